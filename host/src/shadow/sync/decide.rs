//! What one sync of a shadow does, given its record and both sides as they are now. Pure logic.
//!
//! Both sides present: merge over the record's base ([`super::merge`]) and update each side
//! that differs from the result (a side the direction does not write is left alone). One side
//! absent: if the shadow was synced before and the other side has not changed since (same
//! version, same state as synced, no local change pending), the absent side deleted it and the
//! delete propagates; otherwise the present side is copied over (a shadow recreated or changed
//! since is never deleted, even one recreated at the same version number). A cloud that cannot
//! be reached decides nothing: this runs only on an answer from it.
//!
//! The base recorded is the state both sides have after a `betweenDeviceAndCloud` sync, and the
//! source side's state after a one-way sync (what the source's next changes are told by).

use serde_json::Value;

use super::config::Direction;
use super::merge::{SyncState, merge, patch};
use super::records::SyncRecord;

/// One side of a shadow now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// It does not exist.
    Absent,
    /// Its state and version.
    Present(SyncState, u64),
}

/// What to do to one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Leave it.
    Nothing,
    /// Send this update `state` (creates the shadow if absent).
    Update(Value),
    /// Delete the shadow.
    Delete,
}

/// The outcome of a sync: what to do locally and in the cloud, and the new base (`None`: both
/// sides end without the shadow, forget it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// To the local shadow.
    pub local: Action,
    /// To the cloud shadow.
    pub cloud: Action,
    /// The state both sides will have.
    pub base: Option<SyncState>,
}

impl Decision {
    fn forget() -> Self {
        Self { local: Action::Nothing, cloud: Action::Nothing, base: None }
    }
}

/// Decides one sync. `record` is `None` for a shadow never synced.
pub fn decide(record: Option<&SyncRecord>, local: &Side, cloud: &Side, direction: Direction) -> Decision {
    let synced = record.and_then(|r| r.base.as_ref().map(|_| r));
    match (local, cloud) {
        (Side::Absent, Side::Absent) => Decision::forget(),
        (Side::Present(l, _), Side::Present(c, _)) => {
            let empty = SyncState::default();
            let base = synced.and_then(|r| r.base.as_ref()).unwrap_or(&empty);
            let merged = merge(base, l, c, direction);
            let update = |from: &SyncState, allowed: bool| match patch(from, &merged) {
                Some(state) if allowed => Action::Update(state),
                _ => Action::Nothing,
            };
            let base = match direction {
                Direction::Both => merged.clone(),
                Direction::DeviceToCloud => l.clone(),
                Direction::CloudToDevice => c.clone(),
            };
            Decision { local: update(l, direction.downward()), cloud: update(c, direction.upward()), base: Some(base) }
        }
        (Side::Present(l, version), Side::Absent) => {
            // The base is the local state unless the cloud is the only source.
            let same_state = |r: &SyncRecord| direction == Direction::CloudToDevice || r.base.as_ref() == Some(l);
            let unchanged_here = synced.is_some_and(|r| r.local_version == *version && !r.pending && same_state(r));
            if unchanged_here && direction.downward() {
                Decision { local: Action::Delete, cloud: Action::Nothing, base: None }
            } else if direction.upward() {
                let cloud = patch(&SyncState::default(), l).map_or(Action::Nothing, Action::Update);
                Decision { local: Action::Nothing, cloud, base: Some(l.clone()) }
            } else {
                Decision::forget()
            }
        }
        (Side::Absent, Side::Present(c, version)) => {
            // The base is the cloud state unless the device is the only source.
            let same_state = |r: &SyncRecord| direction == Direction::DeviceToCloud || r.base.as_ref() == Some(c);
            let unchanged_there = synced.is_some_and(|r| r.cloud_version == *version && same_state(r));
            if unchanged_there && direction.upward() {
                Decision { local: Action::Nothing, cloud: Action::Delete, base: None }
            } else if direction.downward() {
                let local = patch(&SyncState::default(), c).map_or(Action::Nothing, Action::Update);
                Decision { local, cloud: Action::Nothing, base: Some(c.clone()) }
            } else {
                Decision::forget()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn present(state: Value, version: u64) -> Side {
        Side::Present(SyncState::from_json(&state), version)
    }

    fn synced(base: Value, local_version: u64, cloud_version: u64) -> SyncRecord {
        SyncRecord {
            base: Some(SyncState::from_json(&base)),
            local_version,
            cloud_version,
            ..SyncRecord::new("Lamp", "")
        }
    }

    #[test]
    fn a_local_change_goes_up_and_a_cloud_change_comes_down() {
        let record = synced(json!({"desired": {"color": "red"}}), 1, 1);
        let local = present(json!({"desired": {"color": "red"}, "reported": {"color": "red"}}), 2);
        let cloud = present(json!({"desired": {"color": "green"}}), 2);
        let d = decide(Some(&record), &local, &cloud, Direction::Both);
        assert_eq!(d.local, Action::Update(json!({"desired": {"color": "green"}})));
        assert_eq!(d.cloud, Action::Update(json!({"reported": {"color": "red"}})));
        assert_eq!(
            d.base,
            Some(SyncState::from_json(&json!({"desired": {"color": "green"}, "reported": {"color": "red"}})))
        );
    }

    #[test]
    fn equal_sides_need_nothing() {
        let state = json!({"reported": {"on": true}});
        let d = decide(None, &present(state.clone(), 4), &present(state, 9), Direction::Both);
        assert_eq!((d.local, d.cloud), (Action::Nothing, Action::Nothing));
    }

    #[test]
    fn a_cloud_delete_propagates_unless_the_shadow_changed_here_since() {
        let record = synced(json!({"reported": {"on": true}}), 5, 3);
        let unchanged = present(json!({"reported": {"on": true}}), 5);
        let d = decide(Some(&record), &unchanged, &Side::Absent, Direction::Both);
        assert_eq!(d, Decision { local: Action::Delete, cloud: Action::Nothing, base: None });
        let changed = present(json!({"reported": {"on": false}}), 6);
        let d = decide(Some(&record), &changed, &Side::Absent, Direction::Both);
        assert_eq!(d.cloud, Action::Update(json!({"reported": {"on": false}})), "recreated, not deleted");
        assert_eq!(d.local, Action::Nothing);
    }

    #[test]
    fn a_shadow_recreated_at_the_same_version_or_changed_while_pending_is_not_deleted() {
        let record = synced(json!({"reported": {"on": true}}), 1, 3);
        let recreated = present(json!({"reported": {"on": false, "new": 1}}), 1);
        let d = decide(Some(&record), &recreated, &Side::Absent, Direction::Both);
        assert_eq!(d.local, Action::Nothing, "same version, other state: recreated here");
        assert_eq!(d.cloud, Action::Update(json!({"reported": {"on": false, "new": 1}})));
        let pending = SyncRecord { pending: true, ..record.clone() };
        let same = present(json!({"reported": {"on": true}}), 1);
        let d = decide(Some(&pending), &same, &Side::Absent, Direction::Both);
        assert_eq!(d.local, Action::Nothing, "a local change is pending");
        let cloud_recreated = present(json!({"desired": {"on": false}}), 3);
        let d = decide(Some(&record), &Side::Absent, &cloud_recreated, Direction::Both);
        assert_eq!(d.cloud, Action::Nothing, "same cloud version, other state: recreated there");
        assert_eq!(d.local, Action::Update(json!({"desired": {"on": false}})));
    }

    #[test]
    fn a_shadow_never_synced_is_copied_not_deleted() {
        let local = present(json!({"reported": {"on": true}}), 1);
        let d = decide(None, &local, &Side::Absent, Direction::Both);
        assert_eq!(d.cloud, Action::Update(json!({"reported": {"on": true}})));
        let d = decide(None, &Side::Absent, &local, Direction::Both);
        assert_eq!(d.local, Action::Update(json!({"reported": {"on": true}})));
    }

    #[test]
    fn a_local_delete_propagates_unless_the_cloud_changed_since() {
        let record = synced(json!({"reported": {"on": true}}), 5, 3);
        let d = decide(Some(&record), &Side::Absent, &present(json!({"reported": {"on": true}}), 3), Direction::Both);
        assert_eq!(d.cloud, Action::Delete);
        let d = decide(Some(&record), &Side::Absent, &present(json!({"desired": {"on": false}}), 4), Direction::Both);
        assert_eq!(d.local, Action::Update(json!({"desired": {"on": false}})));
    }

    #[test]
    fn one_way_directions_never_write_the_source_side() {
        let record = synced(json!({}), 1, 1);
        let local = present(json!({"reported": {"a": 1}}), 2);
        let cloud = present(json!({"desired": {"b": 2}}), 2);
        let up = decide(Some(&record), &local, &cloud, Direction::DeviceToCloud);
        assert_eq!(up.local, Action::Nothing);
        assert_eq!(up.cloud, Action::Update(json!({"reported": {"a": 1}})), "the operator's desired stays");
        assert_eq!(up.base, Some(SyncState::from_json(&json!({"reported": {"a": 1}}))), "the source's state");
        let down = decide(Some(&record), &local, &cloud, Direction::CloudToDevice);
        assert_eq!(down.cloud, Action::Nothing);
        assert_eq!(down.local, Action::Update(json!({"desired": {"b": 2}})), "the device's report stays");
        assert_eq!(decide(None, &Side::Absent, &cloud, Direction::DeviceToCloud), Decision::forget());
        assert_eq!(decide(None, &local, &Side::Absent, Direction::CloudToDevice), Decision::forget());
    }

    #[test]
    fn both_absent_forgets_the_shadow() {
        assert_eq!(
            decide(Some(&synced(json!({}), 1, 1)), &Side::Absent, &Side::Absent, Direction::Both),
            Decision::forget()
        );
    }
}
