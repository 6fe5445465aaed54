//! File-system events, as the watcher needs them (pure).
//!
//! The kernel (inotify, through the `notify` crate) tells which paths changed; this module
//! reduces an event to what the settle rules care about: a path a writer has *finished*
//! (closed after writing, or renamed into place: it can be used at once), a path still being
//! written (it waits until it stops changing), or "look at everything again" (the kernel's
//! event queue overflowed). Access events that change nothing are ignored.

use std::path::PathBuf;

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind};

/// What one event means for the watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touch {
    /// These paths were closed after writing or renamed into place: their content is final.
    Finished(Vec<PathBuf>),
    /// These paths changed (created, written, removed, renamed away) and may still be changing.
    Changing(Vec<PathBuf>),
    /// Events were lost: scan everything.
    Rescan,
    /// Nothing the watcher cares about.
    Nothing,
}

/// Classifies one event.
pub fn classify(event: &Event) -> Touch {
    if event.need_rescan() {
        return Touch::Rescan;
    }
    let paths = event.paths.clone();
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Touch::Finished(paths),
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => Touch::Finished(paths),
        // A rename inside the watched folders: the first path left, the second arrived.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => match paths.as_slice() {
            [from, to] => Touch::Finished(vec![from.clone(), to.clone()]),
            _ => Touch::Changing(paths),
        },
        EventKind::Access(_) => Touch::Nothing,
        EventKind::Any | EventKind::Other => Touch::Rescan,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => Touch::Changing(paths),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, Flag, RemoveKind};

    fn event(kind: EventKind, paths: &[&str]) -> Event {
        let mut event = Event::new(kind);
        for path in paths {
            event = event.add_path(PathBuf::from(path));
        }
        event
    }

    #[test]
    fn closing_after_writing_and_renaming_into_place_finish_a_file() {
        let closed = event(EventKind::Access(AccessKind::Close(AccessMode::Write)), &["/p/a.wasm"]);
        assert_eq!(classify(&closed), Touch::Finished(vec!["/p/a.wasm".into()]));
        let moved_in = event(EventKind::Modify(ModifyKind::Name(RenameMode::To)), &["/p/a.wasm"]);
        assert_eq!(classify(&moved_in), Touch::Finished(vec!["/p/a.wasm".into()]));
        let renamed = event(EventKind::Modify(ModifyKind::Name(RenameMode::Both)), &["/p/.a.tmp", "/p/a.wasm"]);
        assert_eq!(classify(&renamed), Touch::Finished(vec!["/p/.a.tmp".into(), "/p/a.wasm".into()]));
    }

    #[test]
    fn writes_creations_and_removals_are_still_changing() {
        let written = event(EventKind::Modify(ModifyKind::Data(DataChange::Any)), &["/p/a.wasm"]);
        assert_eq!(classify(&written), Touch::Changing(vec!["/p/a.wasm".into()]));
        let created = event(EventKind::Create(CreateKind::File), &["/p/a.wasm"]);
        assert_eq!(classify(&created), Touch::Changing(vec!["/p/a.wasm".into()]));
        let removed = event(EventKind::Remove(RemoveKind::File), &["/p/a.wasm"]);
        assert_eq!(classify(&removed), Touch::Changing(vec!["/p/a.wasm".into()]));
    }

    #[test]
    fn reads_are_ignored_and_lost_events_mean_a_full_scan() {
        let opened = event(EventKind::Access(AccessKind::Open(AccessMode::Read)), &["/p/a.wasm"]);
        assert_eq!(classify(&opened), Touch::Nothing);
        let overflow = Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert_eq!(classify(&overflow), Touch::Rescan);
    }
}
