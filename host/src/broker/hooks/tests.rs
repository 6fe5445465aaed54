//! The broker hooks' pure parts: shape limits and drop reasons.

use rmqtt::types::Reason;

use super::ends::drop_reason;
use super::*;
use crate::broker::stats::DropReason;

#[test]
fn topic_depth_and_subscription_quota() {
    let shape = ShapeLimits { max_subscriptions: 2, max_topic_levels: 3 };
    assert_eq!(shape.too_deep("a/b/c"), None);
    assert_eq!(shape.too_deep("a/b/c/d").as_deref(), Some("4 topic levels, more than the limit of 3"));
    assert_eq!(shape.too_deep("$share/group/a/b/c"), None, "the share prefix is not a level");
    assert!(shape.too_deep("$share/group/a/b/c/#").is_some());
    assert!(shape.too_deep("////").is_some(), "empty levels count");
    assert_eq!(shape.over_quota(1), None);
    assert!(shape.over_quota(2).is_some());
    let none = ShapeLimits::default();
    assert_eq!(none.too_deep(&"a/".repeat(10_000)), None);
    assert_eq!(none.over_quota(usize::MAX), None);
}

#[test]
fn rmqtt_drop_reasons_map_to_counters() {
    assert_eq!(drop_reason(&Reason::MessageQueueFull), DropReason::QueueFull);
    assert_eq!(drop_reason(&Reason::MessageExpiration), DropReason::Expired);
    let denied = Reason::PublishResult(rmqtt::types::PublishResult::success());
    assert_eq!(drop_reason(&denied), DropReason::Denied);
    assert_eq!(drop_reason(&Reason::SubscriberStalled), DropReason::SessionEnded);
    assert_eq!(drop_reason(&Reason::QueueWaitTimedOut), DropReason::WaitTimedOut);
    assert_eq!(drop_reason(&Reason::Unsubscribed), DropReason::Unsubscribed);
    assert_eq!(drop_reason(&Reason::from_static("the client has disconnected")), DropReason::SessionEnded);
}
