//! What registries said of images, kept for a while: bounded in entries (the oldest goes
//! first) and in time (an answer for [`ANSWER_TTL`], a failure for [`FAILURE_TTL`], so that a
//! rollout of many pods asks a registry once, and a registry that was down is asked again
//! soon). Pure: the caller gives the time.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use injector::ImageCommand;

/// How many images are remembered at most.
pub const MAX_ENTRIES: usize = 1024;

/// How long an image's command is remembered (a tag may be pushed again).
pub const ANSWER_TTL: Duration = Duration::from_secs(10 * 60);

/// How long a failure is remembered.
pub const FAILURE_TTL: Duration = Duration::from_secs(30);

/// Images' commands, or why they could not be read, as of when.
#[derive(Debug)]
pub struct Cache {
    entries: HashMap<String, (Instant, Result<ImageCommand, String>)>,
    /// Images in the order they were put, oldest first.
    order: VecDeque<String>,
    capacity: usize,
}

impl Cache {
    /// An empty cache of at most `capacity` images.
    pub fn new(capacity: usize) -> Cache {
        Cache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// What is known of `image` at `now`, unless it is too old.
    pub fn get(&self, image: &str, now: Instant) -> Option<Result<ImageCommand, String>> {
        let (at, result) = self.entries.get(image)?;
        let ttl = if result.is_ok() {
            ANSWER_TTL
        } else {
            FAILURE_TTL
        };
        (now.saturating_duration_since(*at) < ttl).then(|| result.clone())
    }

    /// Remembers what was learnt of `image` at `now`, forgetting the oldest image when full.
    pub fn put(&mut self, image: &str, now: Instant, result: Result<ImageCommand, String>) {
        if self
            .entries
            .insert(image.to_owned(), (now, result))
            .is_some()
        {
            self.order.retain(|i| i != image);
        }
        self.order.push_back(image.to_owned());
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.entries.remove(&oldest);
            }
        }
    }

    /// How many images are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(program: &str) -> ImageCommand {
        ImageCommand {
            entrypoint: vec![program.to_owned()],
            cmd: Vec::new(),
        }
    }

    #[test]
    fn answers_and_failures_are_kept_for_their_own_time() {
        let start = Instant::now();
        let mut cache = Cache::new(8);
        cache.put("web:1", start, Ok(command("/web")));
        cache.put("down:1", start, Err("registry.example: 503".to_owned()));
        let at = |d: Duration| start + d;
        assert_eq!(
            cache.get("web:1", at(ANSWER_TTL - Duration::from_secs(1))),
            Some(Ok(command("/web")))
        );
        assert_eq!(cache.get("web:1", at(ANSWER_TTL)), None);
        assert!(cache.get("down:1", at(Duration::from_secs(1))).is_some());
        assert_eq!(cache.get("down:1", at(FAILURE_TTL)), None);
        assert_eq!(cache.get("other:1", start), None);
    }

    #[test]
    fn the_oldest_image_goes_first_when_full() {
        let now = Instant::now();
        let mut cache = Cache::new(2);
        cache.put("a", now, Ok(command("/a")));
        cache.put("b", now, Ok(command("/b")));
        // Put again: it becomes the newest.
        cache.put("a", now, Ok(command("/a2")));
        cache.put("c", now, Ok(command("/c")));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("b", now), None);
        assert_eq!(cache.get("a", now), Some(Ok(command("/a2"))));
        assert!(cache.get("c", now).is_some());
        assert!(!cache.is_empty());
    }
}
