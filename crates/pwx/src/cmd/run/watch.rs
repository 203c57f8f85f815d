//! Watching the files a running configuration was built from (the configuration file and
//! local module files) so `pwx run` reloads when one changes.
//!
//! The parent directories are watched, not the files: editors and build tools replace a file
//! (write a temporary, rename it over), which ends a watch on the old file.

use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc::UnboundedSender;

/// A live watch; dropping it stops watching.
pub(super) struct FileWatch {
    _watcher: notify::RecommendedWatcher,
    files: Vec<PathBuf>,
}

impl FileWatch {
    /// Watches `files` (those that exist); each change to one sends its path on `changed`.
    pub(super) fn start(
        files: &[PathBuf],
        changed: UnboundedSender<PathBuf>,
    ) -> notify::Result<FileWatch> {
        let files: Vec<PathBuf> = files
            .iter()
            .filter_map(|f| std::path::absolute(f).ok())
            .filter(|f| f.is_file())
            .collect();
        let wanted: HashSet<PathBuf> = files.iter().cloned().collect();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if !matches!(
                    event.kind,
                    EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
                ) {
                    return;
                }
                for path in event.paths {
                    if wanted.contains(&path) {
                        let _ = changed.send(path);
                    }
                }
            })?;
        let directories: HashSet<&Path> = files.iter().filter_map(|f| f.parent()).collect();
        for directory in directories {
            watcher.watch(directory, RecursiveMode::NonRecursive)?;
        }
        Ok(FileWatch {
            _watcher: watcher,
            files,
        })
    }

    /// The files watched.
    pub(super) fn files(&self) -> &[PathBuf] {
        &self.files
    }
}
