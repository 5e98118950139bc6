//! The per-process env answer cache, shared by every thread, and the
//! coalescing that lets threads asking at once share one round trip.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rustc_hash::FxHashMap;

use crate::env::EnvQuery;

/// A cached answer for one env name.
#[derive(Debug, Clone)]
struct NameAnswer {
    value: Option<String>,
    tracked: bool,
}

/// A cached answer for one env query.
#[derive(Debug, Clone)]
struct QueryAnswer {
    matches: BTreeMap<String, String>,
    tracked: bool,
}

#[derive(Debug, Default)]
struct Cache {
    names: FxHashMap<String, NameAnswer>,
    queries: FxHashMap<EnvQuery, QueryAnswer>,
}

/// Answers already given, and names threads are waiting to ask for.
///
/// A name (or query) answered with the same or a stronger `tracked` is
/// answered again from here with no round trip. Threads that miss at the
/// same time say what they are about to ask for; whoever holds the channel
/// next asks for every waiting name of the same `tracked` along with its own,
/// so threads calling at once wait for one round trip, not one each.
#[derive(Debug, Default)]
pub struct EnvAnswers {
    cache: RwLock<Cache>,
    waiting: Mutex<Vec<(String, bool)>>,
}

impl EnvAnswers {
    /// Calls `f` with the cached value of `name` when it was answered with
    /// the same or a stronger `tracked`; `Err(f)` back otherwise. `f` runs
    /// under the read lock, so the value is not copied.
    pub fn with_cached<R, F: FnOnce(Option<&str>) -> R>(
        &self,
        name: &str,
        tracked: bool,
        f: F,
    ) -> Result<R, F> {
        let cache = self.read();
        match cache.names.get(name).filter(|a| a.tracked >= tracked) {
            Some(answer) => Ok(f(answer.value.as_deref())),
            None => Err(f),
        }
    }

    /// The values of `names`, in order, fetching the ones not cached with
    /// `fetch` while holding `channel`. `fetch` gets the sorted, deduped
    /// names to ask for (never empty) and returns their values in that order,
    /// or `None` when the runner did not answer.
    pub fn names<C>(
        &self,
        names: &[&str],
        tracked: bool,
        channel: &Mutex<C>,
        mut fetch: impl FnMut(&mut C, &[String]) -> Option<Vec<Option<String>>>,
    ) -> Vec<Option<String>> {
        let missing = self.missing(names.iter().copied(), tracked);
        if !missing.is_empty() {
            self.lock_waiting()
                .extend(missing.iter().map(|name| (name.clone(), tracked)));
            let mut channel = channel.lock().unwrap_or_else(PoisonError::into_inner);
            // Everything waiting with the same `tracked`, ours included,
            // unless a thread that held the channel meanwhile fetched it.
            let asked = {
                let mut waiting = self.lock_waiting();
                let (same, other): (Vec<_>, Vec<_>) = std::mem::take(&mut *waiting)
                    .into_iter()
                    .partition(|(_, wanted)| *wanted == tracked);
                *waiting = other;
                drop(waiting);
                self.missing(
                    same.iter()
                        .map(|(name, _)| name.as_str())
                        .chain(missing.iter().map(String::as_str)),
                    tracked,
                )
            };
            if !asked.is_empty() {
                if let Some(values) = fetch(&mut channel, &asked) {
                    let mut cache = self.write();
                    for (name, value) in asked.into_iter().zip(values) {
                        let entry = cache.names.entry(name).or_insert(NameAnswer {
                            value: None,
                            tracked: false,
                        });
                        entry.value = value;
                        entry.tracked |= tracked;
                    }
                }
            }
        }
        let cache = self.read();
        names
            .iter()
            .map(|name| cache.names.get(*name).and_then(|a| a.value.clone()))
            .collect()
    }

    /// The matches of `query` fetched with `fetch` under `channel`, unless
    /// already cached with the same or a stronger `tracked`. `None` when the
    /// runner did not answer.
    pub fn query<C>(
        &self,
        query: &EnvQuery,
        tracked: bool,
        channel: &Mutex<C>,
        fetch: impl FnOnce(&mut C) -> Option<BTreeMap<String, String>>,
    ) -> Option<BTreeMap<String, String>> {
        if let Some(matches) = self.cached_query(query, tracked) {
            return Some(matches);
        }
        let mut channel = channel.lock().unwrap_or_else(PoisonError::into_inner);
        // A thread that held the channel meanwhile may have asked already.
        if let Some(matches) = self.cached_query(query, tracked) {
            return Some(matches);
        }
        let matches = fetch(&mut channel)?;
        let mut cache = self.write();
        let entry = cache
            .queries
            .entry(query.clone())
            .or_insert_with(|| QueryAnswer {
                matches: matches.clone(),
                tracked,
            });
        entry.tracked |= tracked;
        Some(matches)
    }

    /// The cached matches of `query`, if answered with a `tracked` as strong.
    pub fn cached_query(
        &self,
        query: &EnvQuery,
        tracked: bool,
    ) -> Option<BTreeMap<String, String>> {
        self.read()
            .queries
            .get(query)
            .filter(|a| a.tracked >= tracked)
            .map(|a| a.matches.clone())
    }

    /// Forgets every answer: a forked child asks its own connection.
    pub fn clear(&self) {
        *self.write() = Cache::default();
        self.lock_waiting().clear();
    }

    /// The names among `names` not answered with a `tracked` as strong,
    /// sorted and deduped. No variable has an empty name: it is answered as
    /// absent, never asked.
    fn missing<'a>(&self, names: impl Iterator<Item = &'a str>, tracked: bool) -> Vec<String> {
        let cache = self.read();
        let mut missing: Vec<String> = names
            .filter(|name| !name.is_empty())
            .filter(|name| cache.names.get(*name).is_none_or(|a| tracked && !a.tracked))
            .map(str::to_owned)
            .collect();
        missing.sort_unstable();
        missing.dedup();
        missing
    }

    fn read(&self) -> RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_waiting(&self) -> MutexGuard<'_, Vec<(String, bool)>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use super::*;

    /// A fake channel: counts round trips and the names each asked for.
    #[derive(Default)]
    struct Fake {
        trips: Vec<Vec<String>>,
    }

    fn value_of(name: &str) -> Option<String> {
        (name != "ABSENT").then(|| format!("v-{name}"))
    }

    fn fetch(fake: &mut Fake, names: &[String]) -> Option<Vec<Option<String>>> {
        fake.trips.push(names.to_vec());
        Some(names.iter().map(|n| value_of(n)).collect())
    }

    #[test]
    fn a_name_is_fetched_once_and_absence_is_cached() {
        let answers = EnvAnswers::default();
        let channel = Mutex::new(Fake::default());
        for _ in 0..3 {
            let values = answers.names(&["A", "ABSENT", "A", ""], true, &channel, fetch);
            assert_eq!(values, [Some("v-A".into()), None, Some("v-A".into()), None]);
        }
        assert_eq!(channel.lock().unwrap().trips, [vec!["A", "ABSENT"]]);
    }

    #[test]
    fn tracked_is_stronger_than_untracked() {
        let answers = EnvAnswers::default();
        let channel = Mutex::new(Fake::default());
        answers.names(&["A"], false, &channel, fetch);
        answers.names(&["A"], false, &channel, fetch);
        answers.names(&["A"], true, &channel, fetch);
        answers.names(&["A"], false, &channel, fetch);
        answers.names(&["A"], true, &channel, fetch);
        assert_eq!(channel.lock().unwrap().trips.len(), 2);
        assert_eq!(
            answers
                .with_cached("A", true, |v| v.map(str::to_owned))
                .ok(),
            Some(Some("v-A".into()))
        );
    }

    #[test]
    fn an_unanswered_fetch_caches_nothing() {
        let answers = EnvAnswers::default();
        let channel = Mutex::new(());
        let values = answers.names(&["A"], true, &channel, |_, _| None);
        assert_eq!(values, [None]);
        assert!(answers.with_cached("A", false, |_| ()).is_err());
    }

    #[test]
    fn threads_asking_at_once_share_round_trips() {
        // Eight threads ask for eight names while one holds the channel: the
        // holder's trip is one, and the seven waiting are asked for together
        // by whichever takes the channel next, so at most three trips in all
        // and every thread gets its own answer.
        let answers = Arc::new(EnvAnswers::default());
        let channel = Arc::new(Mutex::new(Fake::default()));
        let start = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (answers, channel, start) = (
                    Arc::clone(&answers),
                    Arc::clone(&channel),
                    Arc::clone(&start),
                );
                std::thread::spawn(move || {
                    let name = format!("N{i}");
                    start.wait();
                    let value = answers.names(&[name.as_str()], true, &channel, |fake, names| {
                        // Hold the channel long enough for the others to queue.
                        std::thread::sleep(Duration::from_millis(50));
                        fetch(fake, names)
                    });
                    assert_eq!(value, [value_of(&name)]);
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let trips = &channel.lock().unwrap().trips;
        let asked: usize = trips.iter().map(Vec::len).sum();
        assert!(trips.len() <= 3, "{trips:?}");
        assert_eq!(asked, 8, "no name asked twice: {trips:?}");
    }

    #[test]
    fn waiting_names_of_the_other_tracked_are_not_taken() {
        let answers = EnvAnswers::default();
        answers.lock_waiting().push(("U".into(), false));
        let channel = Mutex::new(Fake::default());
        answers.names(&["T"], true, &channel, fetch);
        assert_eq!(channel.lock().unwrap().trips, [vec!["T"]]);
        assert_eq!(*answers.lock_waiting(), [("U".to_owned(), false)]);
    }

    #[test]
    fn racing_threads_ask_a_query_once() {
        let answers = Arc::new(EnvAnswers::default());
        let channel = Arc::new(Mutex::new(0u32));
        let query = EnvQuery::Glob("VITE_*".into());
        let start = Arc::new(Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (answers, channel, start, query) = (
                    Arc::clone(&answers),
                    Arc::clone(&channel),
                    Arc::clone(&start),
                    query.clone(),
                );
                std::thread::spawn(move || {
                    start.wait();
                    answers.query(&query, true, &channel, |trips| {
                        *trips += 1;
                        std::thread::sleep(Duration::from_millis(20));
                        Some(BTreeMap::from([("VITE_A".to_owned(), "1".to_owned())]))
                    })
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap().unwrap()["VITE_A"], "1");
        }
        assert_eq!(*channel.lock().unwrap(), 1);
    }

    #[test]
    fn clear_forgets_everything() {
        let answers = EnvAnswers::default();
        let channel = Mutex::new(Fake::default());
        answers.names(&["A"], true, &channel, fetch);
        answers.clear();
        answers.names(&["A"], true, &channel, fetch);
        assert_eq!(channel.lock().unwrap().trips.len(), 2);
    }
}
