//! The store as rmqtt sees it (`RetainStorage`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rmqtt::retain::RetainStorage;
use rmqtt::types::{Retain, TopicFilter, TopicName};

use super::RetainStore;

/// rmqtt holds the store as a box; the broker keeps the same store to check room and close it.
pub struct SharedRetain(pub Arc<RetainStore>);

#[async_trait]
impl RetainStorage for SharedRetain {
    fn enable(&self) -> bool {
        true
    }

    async fn set(&self, topic: &TopicName, retain: Retain, expiry_interval: Option<Duration>) -> rmqtt::Result<()> {
        self.0.set_now(topic, retain, expiry_interval, Instant::now());
        Ok(())
    }

    async fn get(&self, topic_filter: &TopicFilter) -> rmqtt::Result<Vec<(TopicName, Retain)>> {
        Ok(self.0.get_now(topic_filter, Instant::now()))
    }

    async fn count(&self) -> isize {
        isize::try_from(self.0.count()).unwrap_or(isize::MAX)
    }

    async fn max(&self) -> isize {
        isize::try_from(self.0.max_seen.load(Ordering::Relaxed)).unwrap_or(isize::MAX)
    }
}
