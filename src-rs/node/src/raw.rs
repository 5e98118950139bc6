//! Raw Node-API callbacks for the calls tools make in hot loops; the only
//! unsafe code of the addon.
//!
//! A generated napi-rs method costs about 0.25 µs before it does anything
//! (receiver unwrap, borrow scopes, a heap `String` per argument), as much as
//! a whole deduped `getEnv` may take. These read a string argument into a
//! stack buffer and build the answer straight from the cache: conversion only,
//! like the rest of the binding.
//!
//! Every entry point checks the status of each N-API call it depends on and
//! runs its Rust part inside `catch_unwind`: a panic becomes a JavaScript
//! error, never an abort of the tool's process.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use napi::sys;
use runner_aware::caller::{from_js_stack, StackContext};
use runner_aware::Client;

/// Stack room for a string argument; longer ones take one allocation.
const SCRATCH: usize = 512;

/// The first two arguments (missing ones are `undefined`) and their count;
/// `None` when N-API could not read them.
///
/// # Safety
/// `env` and `info` must be the ones Node passed to the running callback.
unsafe fn args(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Option<([sys::napi_value; 2], usize)> {
    let mut argv = [ptr::null_mut(); 2];
    let mut argc = argv.len();
    // SAFETY: `argv` has room for `argc` values, as N-API requires; the
    // `this` and data out-pointers may be null.
    let status = unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    (status == sys::Status::napi_ok).then_some((argv, argc))
}

/// Throws `message` as a `TypeError` (or `Error`) and returns the null value
/// a callback returns after throwing.
///
/// # Safety
/// `env` must be the one Node passed to the running callback.
unsafe fn throw(env: sys::napi_env, message: &str, type_error: bool) -> sys::napi_value {
    // A message with a NUL byte is cut there rather than lost.
    let message = message.split('\0').next().unwrap_or_default();
    let message = std::ffi::CString::new(message).unwrap_or_default();
    // SAFETY: `message` is a NUL-terminated string that outlives the call; a
    // null code is allowed. If throwing fails, an exception is already pending.
    unsafe {
        if type_error {
            sys::napi_throw_type_error(env, ptr::null(), message.as_ptr());
        } else {
            sys::napi_throw_error(env, ptr::null(), message.as_ptr());
        }
    }
    ptr::null_mut()
}

/// `undefined`.
///
/// # Safety
/// `env` must be the one Node passed to the running callback.
unsafe fn undefined(env: sys::napi_env) -> sys::napi_value {
    let mut value = ptr::null_mut();
    // SAFETY: `value` is a valid out-pointer. On failure it stays null, which
    // N-API returns to JavaScript as `undefined`.
    unsafe { sys::napi_get_undefined(env, &mut value) };
    value
}

/// Calls `f` with the string in `value`; `None` when it is not a string.
///
/// # Safety
/// `env` must be the one Node passed to the running callback and `value` a
/// value of that call.
unsafe fn with_str<R>(
    env: sys::napi_env,
    value: sys::napi_value,
    f: impl FnOnce(&str) -> R,
) -> Option<R> {
    let mut stack = [0u8; SCRATCH];
    let mut copied = 0;
    // SAFETY: the buffer is `SCRATCH` bytes long, as the call is told.
    let status = unsafe {
        sys::napi_get_value_string_utf8(env, value, stack.as_mut_ptr().cast(), SCRATCH, &mut copied)
    };
    if status != sys::Status::napi_ok {
        return None;
    }
    // Node writes whole characters only: a copy that leaves room for one
    // more 4-byte character was not cut short.
    if copied + 4 < SCRATCH - 1 {
        return Some(f(&String::from_utf8_lossy(&stack[..copied])));
    }
    let mut len = 0;
    // SAFETY: a null buffer asks for the length only.
    let status =
        unsafe { sys::napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, &mut len) };
    if status != sys::Status::napi_ok {
        return None;
    }
    let mut heap = vec![0u8; len + 1];
    // SAFETY: the buffer is `heap.len()` bytes long, as the call is told.
    let status = unsafe {
        sys::napi_get_value_string_utf8(
            env,
            value,
            heap.as_mut_ptr().cast(),
            heap.len(),
            &mut copied,
        )
    };
    (status == sys::Status::napi_ok).then(|| f(&String::from_utf8_lossy(&heap[..copied])))
}

/// The type of `value`, `None` when N-API cannot tell.
///
/// # Safety
/// As for [`with_str`].
unsafe fn type_of(env: sys::napi_env, value: sys::napi_value) -> Option<sys::napi_valuetype> {
    let mut kind = 0;
    // SAFETY: `kind` is a valid out-pointer.
    let status = unsafe { sys::napi_typeof(env, value, &mut kind) };
    (status == sys::Status::napi_ok).then_some(kind)
}

/// `options.tracked`, default `true`; `Err` with the message to throw when
/// the options are not an object with an optional boolean `tracked`.
///
/// # Safety
/// As for [`with_str`].
unsafe fn tracked(env: sys::napi_env, options: sys::napi_value) -> Result<bool, &'static str> {
    // SAFETY: the caller's guarantees carry over.
    match unsafe { type_of(env, options) } {
        Some(sys::ValueType::napi_undefined | sys::ValueType::napi_null) => return Ok(true),
        Some(sys::ValueType::napi_object) => {}
        _ => return Err("runner-aware getEnv: options must be an object"),
    }
    let mut value = ptr::null_mut();
    // SAFETY: `options` is an object and the key a NUL-terminated literal.
    let status =
        unsafe { sys::napi_get_named_property(env, options, c"tracked".as_ptr(), &mut value) };
    if status != sys::Status::napi_ok {
        return Err("runner-aware getEnv: options.tracked cannot be read");
    }
    // SAFETY: `value` was just returned by N-API for this call.
    match unsafe { type_of(env, value) } {
        Some(sys::ValueType::napi_undefined | sys::ValueType::napi_null) => Ok(true),
        Some(sys::ValueType::napi_boolean) => {
            let mut tracked = true;
            // SAFETY: `value` is a boolean and `tracked` a valid out-pointer.
            let status = unsafe { sys::napi_get_value_bool(env, value, &mut tracked) };
            if status == sys::Status::napi_ok {
                Ok(tracked)
            } else {
                Err("runner-aware getEnv: options.tracked cannot be read")
            }
        }
        _ => Err("runner-aware getEnv: options.tracked must be a boolean"),
    }
}

/// Runs a callback body, turning a panic into a thrown `Error`.
///
/// # Safety
/// `env` must be the one Node passed to the running callback.
unsafe fn guarded(
    env: sys::napi_env,
    method: &str,
    body: impl FnOnce() -> sys::napi_value,
) -> sys::napi_value {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        // SAFETY: the caller's guarantee.
        Err(_) => unsafe {
            throw(
                env,
                &format!("runner-aware {method}: internal error"),
                false,
            )
        },
    }
}

/// `getEnv(name, options?)`: the runner's value, `undefined` when it has none.
///
/// # Safety
/// Called by Node as a function's callback, with its own `env` and `info`.
pub unsafe extern "C" fn get_env(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: every call below gets the `env` and values of this callback.
    unsafe {
        guarded(env, "getEnv", || {
            let Some((argv, argc)) = args(env, info) else {
                return throw(env, "runner-aware getEnv: cannot read the arguments", false);
            };
            let tracked = if argc > 1 {
                match tracked(env, argv[1]) {
                    Ok(tracked) => tracked,
                    Err(message) => return throw(env, message, true),
                }
            } else {
                true
            };
            let answer = with_str(env, argv[0], |name| {
                Client::global().with_env(name, tracked, |value| match value {
                    Some(value) => {
                        let mut string = ptr::null_mut();
                        // SAFETY: `value` is valid UTF-8 of the given length.
                        let status = sys::napi_create_string_utf8(
                            env,
                            value.as_ptr().cast(),
                            value.len() as isize,
                            &mut string,
                        );
                        if status == sys::Status::napi_ok {
                            string
                        } else {
                            throw(env, "runner-aware getEnv: cannot create the answer", false)
                        }
                    }
                    None => undefined(env),
                })
            });
            answer.unwrap_or_else(|| throw(env, "runner-aware getEnv: name must be a string", true))
        })
    }
}

/// Clears the exception a failed N-API call left pending, so the tool never
/// sees it.
///
/// # Safety
/// `env` must be the one Node passed to the running callback.
unsafe fn clear_exception(env: sys::napi_env) {
    let mut exception = ptr::null_mut();
    // SAFETY: `exception` is a valid out-pointer; with none pending this does nothing.
    unsafe { sys::napi_get_and_clear_last_exception(env, &mut exception) };
}

/// The code that made the running call, from the JavaScript stack at it (see
/// `runner_aware::caller`); `None` when the stack cannot be read (a tool's own
/// `Error.prepareStackTrace` that throws or returns no string, a
/// `Error.stackTraceLimit` of 0).
///
/// # Safety
/// `env` must be the one Node passed to the running callback.
unsafe fn caller(env: sys::napi_env) -> Option<String> {
    let mut message = ptr::null_mut();
    let mut error = ptr::null_mut();
    let mut stack = ptr::null_mut();
    // SAFETY: out-pointers are valid, the literals NUL-terminated; each value
    // was just returned by N-API for this call.
    unsafe {
        if sys::napi_create_string_utf8(env, c"".as_ptr(), 0, &mut message) != sys::Status::napi_ok
            || sys::napi_create_error(env, ptr::null_mut(), message, &mut error)
                != sys::Status::napi_ok
        {
            return None;
        }
        // Reading `stack` formats it, which runs `Error.prepareStackTrace`.
        if sys::napi_get_named_property(env, error, c"stack".as_ptr(), &mut stack)
            != sys::Status::napi_ok
        {
            clear_exception(env);
            return None;
        }
        if type_of(env, stack) != Some(sys::ValueType::napi_string) {
            return None;
        }
        let context = StackContext::of_process();
        with_str(env, stack, |stack| from_js_stack(stack, &context)).flatten()
    }
}

/// [`caller`] for a generated napi-rs method.
pub fn caller_of(env: &napi::Env) -> Option<String> {
    // SAFETY: an `Env` is only handed to a method while Node runs it.
    unsafe { caller(env.raw()) }
}

/// `disableCache(reason?)`: the run must not be cached; the runner is told
/// who asked (the calling code and process) with it.
///
/// # Safety
/// Called by Node as a function's callback, with its own `env` and `info`.
pub unsafe extern "C" fn disable_cache(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: every call below gets the `env` and values of this callback.
    unsafe {
        guarded(env, "disableCache", || {
            let Some((argv, argc)) = args(env, info) else {
                return throw(
                    env,
                    "runner-aware disableCache: cannot read the arguments",
                    false,
                );
            };
            let reason = match (argc, type_of(env, argv[0])) {
                (0, _) | (_, Some(sys::ValueType::napi_undefined | sys::ValueType::napi_null)) => {
                    None
                }
                (_, Some(sys::ValueType::napi_string)) => with_str(env, argv[0], str::to_owned),
                _ => {
                    return throw(
                        env,
                        "runner-aware disableCache: reason must be a string",
                        true,
                    )
                }
            };
            let caller = caller(env);
            Client::global().disable_cache_from(reason.as_deref(), caller.as_deref());
            undefined(env)
        })
    }
}

/// A path report: `method(path)`.
///
/// # Safety
/// As for [`get_env`].
unsafe fn report(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    method: &str,
    send: impl FnOnce(&Client, &str),
) -> sys::napi_value {
    // SAFETY: every call below gets the `env` and values of this callback.
    unsafe {
        guarded(env, method, || {
            let Some((argv, _)) = args(env, info) else {
                return throw(
                    env,
                    &format!("runner-aware {method}: cannot read the arguments"),
                    false,
                );
            };
            match with_str(env, argv[0], |path| send(Client::global(), path)) {
                Some(()) => undefined(env),
                None => throw(
                    env,
                    &format!("runner-aware {method}: path must be a string"),
                    true,
                ),
            }
        })
    }
}

/// One callback per path report: N-API takes plain function pointers.
macro_rules! path_reports {
    ($($name:ident: $js:literal => $send:path;)*) => {$(
        #[doc = concat!("`", $js, "(path)`.")]
        ///
        /// # Safety
        /// Called by Node as a function's callback, with its own `env` and `info`.
        pub unsafe extern "C" fn $name(
            env: sys::napi_env,
            info: sys::napi_callback_info,
        ) -> sys::napi_value {
            // SAFETY: forwarded from Node unchanged.
            unsafe { report(env, info, $js, $send) }
        }
    )*};
}

path_reports! {
    ignore_input: "ignoreInput" => Client::ignore_input;
    ignore_output: "ignoreOutput" => Client::ignore_output;
    add_input: "addInput" => Client::add_input;
    add_output: "addOutput" => Client::add_output;
}
