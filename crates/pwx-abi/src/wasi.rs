//! The WASI preview1 functions Envoy provides (under both `wasi_snapshot_preview1` and
//! `wasi_unstable`), with their signatures and the constants pwx needs.

use crate::ValType::{I32, I64};
use crate::sig::*;

/// Module names WASI functions are imported from; Envoy links both.
pub const MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

/// WASI errno values used by the host.
pub mod errno {
    /// Success.
    pub const SUCCESS: i32 = 0;
    /// Bad file descriptor.
    pub const BADF: i32 = 8;
    /// Not a directory.
    pub const NOTDIR: i32 = 20;
    /// Bad address.
    pub const FAULT: i32 = 21;
    /// Invalid argument.
    pub const INVAL: i32 = 28;
    /// No such file or directory.
    pub const NOENT: i32 = 44;
    /// Function not implemented.
    pub const NOSYS: i32 = 52;
    /// Not supported.
    pub const NOTSUP: i32 = 58;
    /// Not permitted by the capability allow-list.
    pub const NOTCAPABLE: i32 = 76;
}

/// Standard output: `fd_write` to it logs at info.
pub const FD_STDOUT: i32 = 1;
/// Standard error: `fd_write` to it logs at error.
pub const FD_STDERR: i32 = 2;
/// `clock_time_get` id of the realtime clock.
pub const CLOCK_REALTIME: i32 = 0;
/// `clock_time_get` id of the monotonic clock.
pub const CLOCK_MONOTONIC: i32 = 1;
/// `fdstat` rights bit: the fd may be written.
pub const RIGHT_FD_WRITE: u64 = 64;
/// `fdstat` filetype of a character device (what stdout/stderr report).
pub const FILETYPE_CHARACTER_DEVICE: u8 = 2;

signature_table! {
    /// A WASI preview1 function the host links.
    WasiCall {
    FdWrite => "fd_write", I32X4, I32X1;
    FdPwrite => "fd_pwrite", &[I32, I32, I32, I64, I32], I32X1;
    FdRead => "fd_read", I32X4, I32X1;
    FdPread => "fd_pread", &[I32, I32, I32, I64, I32], I32X1;
    FdSeek => "fd_seek", &[I32, I64, I32, I32], I32X1;
    FdClose => "fd_close", I32X1, I32X1;
    FdFdstatGet => "fd_fdstat_get", I32X2, I32X1;
    FdFdstatSetFlags => "fd_fdstat_set_flags", I32X2, I32X1;
    FdFdstatSetRights => "fd_fdstat_set_rights", &[I32, I64, I64], I32X1;
    FdPrestatGet => "fd_prestat_get", I32X2, I32X1;
    FdPrestatDirName => "fd_prestat_dir_name", I32X3, I32X1;
    FdFilestatGet => "fd_filestat_get", I32X2, I32X1;
    FdAdvise => "fd_advise", &[I32, I64, I64, I32], I32X1;
    FdAllocate => "fd_allocate", &[I32, I64, I64], I32X1;
    FdDatasync => "fd_datasync", I32X1, I32X1;
    FdSync => "fd_sync", I32X1, I32X1;
    FdFilestatSetSize => "fd_filestat_set_size", I32_I64, I32X1;
    FdFilestatSetTimes => "fd_filestat_set_times", &[I32, I64, I64, I32], I32X1;
    FdReaddir => "fd_readdir", &[I32, I32, I32, I64, I32], I32X1;
    FdRenumber => "fd_renumber", I32X2, I32X1;
    FdTell => "fd_tell", I32X2, I32X1;
    EnvironSizesGet => "environ_sizes_get", I32X2, I32X1;
    EnvironGet => "environ_get", I32X2, I32X1;
    ArgsSizesGet => "args_sizes_get", I32X2, I32X1;
    ArgsGet => "args_get", I32X2, I32X1;
    ClockTimeGet => "clock_time_get", I32_I64_I32, I32X1;
    ClockResGet => "clock_res_get", I32X2, I32X1;
    RandomGet => "random_get", I32X2, I32X1;
    SchedYield => "sched_yield", NONE, I32X1;
    PollOneoff => "poll_oneoff", I32X4, I32X1;
    ProcExit => "proc_exit", I32X1, NONE;
    PathOpen => "path_open", &[I32, I32, I32, I32, I32, I64, I64, I32, I32], I32X1;
    PathFilestatGet => "path_filestat_get", I32X5, I32X1;
    PathCreateDirectory => "path_create_directory", I32X3, I32X1;
    PathRemoveDirectory => "path_remove_directory", I32X3, I32X1;
    PathUnlinkFile => "path_unlink_file", I32X3, I32X1;
    PathFilestatSetTimes => "path_filestat_set_times", &[I32, I32, I32, I32, I64, I64, I32], I32X1;
    PathReadlink => "path_readlink", I32X6, I32X1;
    PathRename => "path_rename", I32X6, I32X1;
    PathLink => "path_link", I32X7, I32X1;
    PathSymlink => "path_symlink", I32X5, I32X1;
    SockAccept => "sock_accept", I32X3, I32X1;
    SockRecv => "sock_recv", I32X6, I32X1;
    SockSend => "sock_send", I32X5, I32X1;
    SockShutdown => "sock_shutdown", I32X2, I32X1;
    }
}

impl WasiCall {
    /// Looks a WASI function up by import name.
    pub fn from_name(name: &str) -> Option<WasiCall> {
        WasiCall::ALL
            .iter()
            .copied()
            .find(|call| call.name() == name)
    }

    /// Whether the module may call it while the host runs its start-up functions.
    pub const fn allowed_during_startup(self) -> bool {
        // Envoy whitelists every WASI function during start-up.
        true
    }

    /// Whether the module may call it from inside its allocator.
    pub const fn allowed_during_allocation(self) -> bool {
        matches!(
            self,
            WasiCall::FdWrite | WasiCall::ClockTimeGet | WasiCall::PollOneoff
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview1_signatures() {
        assert_eq!(WasiCall::PathLink.signature().params.len(), 7);
        assert_eq!(WasiCall::PathSymlink.signature().params.len(), 5);
        assert!(WasiCall::ProcExit.signature().results.is_empty());
        assert_eq!(WasiCall::from_name("random_get"), Some(WasiCall::RandomGet));
    }
}
