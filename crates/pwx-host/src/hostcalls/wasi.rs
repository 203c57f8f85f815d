//! WASI preview1 as Envoy provides it: stdout/stderr go to the log, clocks, random, the
//! configured environment only, `proc_exit` logged rather than trapping; no files, no sockets.

use crate::memory;
use crate::state::HostState;
use pwx_abi::LogLevel;
use pwx_abi::wasi::{WasiCall, errno};
use wasmtime::{Caller, Linker};

type Errno = wasmtime::Result<i32>;

fn enter(caller: &Caller<'_, HostState>, call: WasiCall) -> wasmtime::Result<()> {
    if caller.data().allocating && !call.allowed_during_allocation() {
        wasmtime::bail!(
            "restricted_callback: WASI {} called from inside the module allocator",
            call.name()
        );
    }
    Ok(())
}

fn fault<T>(result: Result<T, pwx_abi::Status>) -> Result<T, i32> {
    result.map_err(|_| errno::FAULT)
}

fn is_std(fd: i32) -> bool {
    fd == pwx_abi::wasi::FD_STDOUT || fd == pwx_abi::wasi::FD_STDERR
}

/// Gathers the iovecs of an `fd_write` into one line.
fn gather(caller: &Caller<'_, HostState>, iovs: i32, iovs_len: i32) -> Result<Vec<u8>, i32> {
    let mut out = Vec::new();
    for i in 0..iovs_len as u32 {
        let entry = fault(memory::read(caller, iovs.wrapping_add((i * 8) as i32), 8))?;
        let ptr = i32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
        let len = i32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]);
        out.extend_from_slice(memory::slice(caller, ptr, len).ok_or(errno::FAULT)?);
    }
    Ok(out)
}

fn write_fd(
    mut caller: Caller<'_, HostState>,
    call: WasiCall,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nwritten: i32,
) -> Errno {
    enter(&caller, call)?;
    if !is_std(fd) {
        return Ok(errno::BADF);
    }
    let mut line = match gather(&caller, iovs, iovs_len) {
        Ok(line) => line,
        Err(code) => return Ok(code),
    };
    let total = line.len() as u32;
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    let level = if fd == pwx_abi::wasi::FD_STDOUT {
        LogLevel::Info
    } else {
        LogLevel::Error
    };
    caller.data().log(level, &String::from_utf8_lossy(&line));
    Ok(match memory::write_u32(&mut caller, nwritten, total) {
        Ok(()) => errno::SUCCESS,
        Err(_) => errno::FAULT,
    })
}

/// `KEY=VALUE\0` strings of the configured environment.
fn environment(state: &HostState) -> Vec<Vec<u8>> {
    state
        .vm
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}\0").into_bytes())
        .collect()
}

fn clock_now(id: i32) -> Option<u64> {
    match id {
        pwx_abi::wasi::CLOCK_REALTIME => Some(super::log::unix_nanos()),
        pwx_abi::wasi::CLOCK_MONOTONIC => {
            static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
            Some(
                START
                    .get_or_init(std::time::Instant::now)
                    .elapsed()
                    .as_nanos() as u64,
            )
        }
        _ => None,
    }
}

/// Registers every WASI function under both module names.
pub(crate) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use WasiCall::*;
    for module in pwx_abi::wasi::MODULES {
        for &call in WasiCall::ALL {
            let name = call.name();
            match call {
                FdWrite => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, fd: i32, iovs: i32, n: i32, out: i32| {
                        write_fd(c, FdWrite, fd, iovs, n, out)
                    },
                )?,
                FdPwrite => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, fd: i32, iovs: i32, n: i32, _off: i64, out: i32| {
                        write_fd(c, FdPwrite, fd, iovs, n, out)
                    },
                )?,
                FdRead => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, _: i32, _: i32, _: i32, _: i32| -> Errno {
                        enter(&c, FdRead)?;
                        Ok(errno::NOSYS)
                    },
                )?,
                FdPread => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, _: i32, _: i32, _: i32, _: i64, _: i32| -> Errno {
                        enter(&c, FdPread)?;
                        Ok(errno::NOSYS)
                    },
                )?,
                FdSeek => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, fd: i32, _: i64, _: i32, _: i32| -> Errno {
                        enter(&c, FdSeek)?;
                        c.data().log(
                            LogLevel::Error,
                            &format!("WASI fd_seek({fd}) is not supported"),
                        );
                        Ok(errno::SUCCESS)
                    },
                )?,
                FdClose => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, fd: i32| -> Errno {
                        enter(&c, FdClose)?;
                        c.data().log(
                            LogLevel::Error,
                            &format!("WASI fd_close({fd}) is not supported"),
                        );
                        Ok(errno::SUCCESS)
                    },
                )?,
                FdFdstatGet => linker.func_wrap(
                    module,
                    name,
                    |mut c: Caller<'_, HostState>, fd: i32, buf: i32| -> Errno {
                        enter(&c, FdFdstatGet)?;
                        if !is_std(fd) {
                            return Ok(errno::BADF);
                        }
                        let mut stat = [0u8; 24];
                        stat[0] = pwx_abi::wasi::FILETYPE_CHARACTER_DEVICE;
                        stat[8..16].copy_from_slice(&pwx_abi::wasi::RIGHT_FD_WRITE.to_le_bytes());
                        Ok(memory::write(&mut c, buf, &stat)
                            .map_or(errno::FAULT, |()| errno::SUCCESS))
                    },
                )?,
                FdFdstatSetFlags => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, _: i32, _: i32| -> Errno {
                        enter(&c, FdFdstatSetFlags)?;
                        Ok(errno::NOSYS)
                    },
                )?,
                FdFdstatSetRights => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, fd: i32, _: i64, _: i64| -> Errno {
                        enter(&c, FdFdstatSetRights)?;
                        Ok(if is_std(fd) {
                            errno::SUCCESS
                        } else {
                            errno::BADF
                        })
                    },
                )?,
                FdPrestatGet => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, _: i32, _: i32| -> Errno {
                        enter(&c, FdPrestatGet)?;
                        // No preopened directories.
                        Ok(errno::BADF)
                    },
                )?,
                FdPrestatDirName => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, _: i32, _: i32, _: i32| -> Errno {
                        enter(&c, FdPrestatDirName)?;
                        Ok(errno::NOSYS)
                    },
                )?,
                FdFilestatGet => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, _: i32, _: i32| -> Errno {
                        enter(&c, FdFilestatGet)?;
                        Ok(errno::BADF)
                    },
                )?,
                FdAdvise => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, _: i32, _: i64, _: i64, _: i32| -> Errno {
                        enter(&c, FdAdvise)?;
                        Ok(errno::SUCCESS)
                    },
                )?,
                FdAllocate => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, fd: i32, _: i64, _: i64| -> Errno {
                        enter(&c, FdAllocate)?;
                        Ok(if is_std(fd) {
                            errno::SUCCESS
                        } else {
                            errno::BADF
                        })
                    },
                )?,
                FdDatasync | FdSync => linker.func_wrap(
                    module,
                    name,
                    move |c: Caller<'_, HostState>, fd: i32| -> Errno {
                        enter(&c, call)?;
                        Ok(if is_std(fd) {
                            errno::SUCCESS
                        } else {
                            errno::BADF
                        })
                    },
                )?,
                FdFilestatSetSize => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, fd: i32, _: i64| -> Errno {
                        enter(&c, FdFilestatSetSize)?;
                        Ok(if is_std(fd) {
                            errno::SUCCESS
                        } else {
                            errno::BADF
                        })
                    },
                )?,
                FdFilestatSetTimes => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, fd: i32, _: i64, _: i64, _: i32| -> Errno {
                        enter(&c, FdFilestatSetTimes)?;
                        Ok(if is_std(fd) {
                            errno::SUCCESS
                        } else {
                            errno::BADF
                        })
                    },
                )?,
                FdReaddir => linker.func_wrap(
                    module,
                    name,
                    |mut c: Caller<'_, HostState>,
                     _: i32,
                     _: i32,
                     _: i32,
                     _: i64,
                     nread: i32|
                     -> Errno {
                        enter(&c, FdReaddir)?;
                        let _ = memory::write_u32(&mut c, nread, 0);
                        Ok(errno::NOTDIR)
                    },
                )?,
                FdRenumber => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, fd: i32, _: i32| -> Errno {
                        enter(&c, FdRenumber)?;
                        Ok(if is_std(fd) {
                            errno::NOTSUP
                        } else {
                            errno::BADF
                        })
                    },
                )?,
                FdTell => linker.func_wrap(
                    module,
                    name,
                    |mut c: Caller<'_, HostState>, fd: i32, offset: i32| -> Errno {
                        enter(&c, FdTell)?;
                        if !is_std(fd) {
                            return Ok(errno::BADF);
                        }
                        Ok(memory::write_u64(&mut c, offset, 0)
                            .map_or(errno::FAULT, |()| errno::SUCCESS))
                    },
                )?,
                EnvironSizesGet => linker.func_wrap(
                    module,
                    name,
                    |mut c: Caller<'_, HostState>, count: i32, size: i32| -> Errno {
                        enter(&c, EnvironSizesGet)?;
                        let env = environment(c.data());
                        let bytes: usize = env.iter().map(Vec::len).sum();
                        let written = memory::write_u32(&mut c, count, env.len() as u32)
                            .and_then(|()| memory::write_u32(&mut c, size, bytes as u32));
                        Ok(written.map_or(errno::FAULT, |()| errno::SUCCESS))
                    },
                )?,
                EnvironGet => linker.func_wrap(
                    module,
                    name,
                    |mut c: Caller<'_, HostState>, array: i32, buf: i32| -> Errno {
                        enter(&c, EnvironGet)?;
                        let env = environment(c.data());
                        let mut at = buf as u32;
                        for (i, entry) in env.iter().enumerate() {
                            let slot = array.wrapping_add((i * 4) as i32);
                            if memory::write_u32(&mut c, slot, at)
                                .and_then(|()| memory::write(&mut c, at as i32, entry))
                                .is_err()
                            {
                                return Ok(errno::FAULT);
                            }
                            at = at.wrapping_add(entry.len() as u32);
                        }
                        Ok(errno::SUCCESS)
                    },
                )?,
                ArgsSizesGet => linker.func_wrap(
                    module,
                    name,
                    |mut c: Caller<'_, HostState>, count: i32, size: i32| -> Errno {
                        enter(&c, ArgsSizesGet)?;
                        let written = memory::write_u32(&mut c, count, 0)
                            .and_then(|()| memory::write_u32(&mut c, size, 0));
                        Ok(written.map_or(errno::FAULT, |()| errno::SUCCESS))
                    },
                )?,
                ArgsGet => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, _: i32, _: i32| -> Errno {
                        enter(&c, ArgsGet)?;
                        Ok(errno::SUCCESS)
                    },
                )?,
                ClockTimeGet => linker.func_wrap(
                    module,
                    name,
                    |mut c: Caller<'_, HostState>, id: i32, _precision: i64, out: i32| -> Errno {
                        enter(&c, ClockTimeGet)?;
                        let Some(now) = clock_now(id) else {
                            return Ok(errno::NOTSUP);
                        };
                        Ok(memory::write_u64(&mut c, out, now)
                            .map_or(errno::FAULT, |()| errno::SUCCESS))
                    },
                )?,
                ClockResGet => linker.func_wrap(
                    module,
                    name,
                    |mut c: Caller<'_, HostState>, id: i32, out: i32| -> Errno {
                        enter(&c, ClockResGet)?;
                        if clock_now(id).is_none() {
                            return Ok(errno::NOTSUP);
                        }
                        Ok(memory::write_u64(&mut c, out, 1)
                            .map_or(errno::FAULT, |()| errno::SUCCESS))
                    },
                )?,
                RandomGet => linker.func_wrap(
                    module,
                    name,
                    |mut c: Caller<'_, HostState>, buf: i32, len: i32| -> Errno {
                        enter(&c, RandomGet)?;
                        if len as u32 > pwx_abi::limits::MAX_RANDOM_BYTES {
                            return Ok(errno::INVAL);
                        }
                        let mut bytes = vec![0u8; len as u32 as usize];
                        if getrandom::fill(&mut bytes).is_err() {
                            return Ok(errno::INVAL);
                        }
                        Ok(memory::write(&mut c, buf, &bytes)
                            .map_or(errno::FAULT, |()| errno::SUCCESS))
                    },
                )?,
                SchedYield => {
                    linker.func_wrap(module, name, |c: Caller<'_, HostState>| -> Errno {
                        enter(&c, SchedYield)?;
                        Ok(errno::SUCCESS)
                    })?
                }
                PollOneoff => linker.func_wrap(
                    module,
                    name,
                    |mut c: Caller<'_, HostState>, _: i32, _: i32, _: i32, nevents: i32| -> Errno {
                        enter(&c, PollOneoff)?;
                        // The Go runtime requires success; no event ever fires.
                        Ok(memory::write_u32(&mut c, nevents, 0)
                            .map_or(errno::FAULT, |()| errno::SUCCESS))
                    },
                )?,
                ProcExit => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, code: i32| -> wasmtime::Result<()> {
                        enter(&c, ProcExit)?;
                        // Envoy logs and returns instead of trapping.
                        c.data().log(
                            LogLevel::Error,
                            &format!("module called WASI proc_exit({code}); ignored as Envoy does"),
                        );
                        Ok(())
                    },
                )?,
                PathOpen => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>,
                     _: i32,
                     _: i32,
                     _: i32,
                     _: i32,
                     _: i32,
                     _: i64,
                     _: i64,
                     _: i32,
                     _: i32|
                     -> Errno {
                        enter(&c, PathOpen)?;
                        Ok(errno::NOENT)
                    },
                )?,
                PathFilestatGet => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, _: i32, _: i32, _: i32, _: i32, _: i32| -> Errno {
                        enter(&c, PathFilestatGet)?;
                        Ok(errno::NOTSUP)
                    },
                )?,
                PathCreateDirectory | PathRemoveDirectory | PathUnlinkFile => linker.func_wrap(
                    module,
                    name,
                    move |c: Caller<'_, HostState>, _: i32, _: i32, _: i32| -> Errno {
                        enter(&c, call)?;
                        Ok(errno::NOTSUP)
                    },
                )?,
                PathFilestatSetTimes => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>,
                     _: i32,
                     _: i32,
                     _: i32,
                     _: i32,
                     _: i64,
                     _: i64,
                     _: i32|
                     -> Errno {
                        enter(&c, PathFilestatSetTimes)?;
                        Ok(errno::NOTSUP)
                    },
                )?,
                PathReadlink => linker.func_wrap(
                    module,
                    name,
                    |mut c: Caller<'_, HostState>,
                     _: i32,
                     _: i32,
                     _: i32,
                     _: i32,
                     _: i32,
                     used: i32|
                     -> Errno {
                        enter(&c, PathReadlink)?;
                        let _ = memory::write_u32(&mut c, used, 0);
                        Ok(errno::NOTSUP)
                    },
                )?,
                PathRename => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>,
                     _: i32,
                     _: i32,
                     _: i32,
                     _: i32,
                     _: i32,
                     _: i32|
                     -> Errno {
                        enter(&c, PathRename)?;
                        Ok(errno::NOTSUP)
                    },
                )?,
                PathLink => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>,
                     _: i32,
                     _: i32,
                     _: i32,
                     _: i32,
                     _: i32,
                     _: i32,
                     _: i32|
                     -> Errno {
                        enter(&c, PathLink)?;
                        Ok(errno::NOTSUP)
                    },
                )?,
                PathSymlink => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, _: i32, _: i32, _: i32, _: i32, _: i32| -> Errno {
                        enter(&c, PathSymlink)?;
                        Ok(errno::NOTSUP)
                    },
                )?,
                SockAccept => linker.func_wrap(
                    module,
                    name,
                    |mut c: Caller<'_, HostState>, _: i32, _: i32, fd: i32| -> Errno {
                        enter(&c, SockAccept)?;
                        let _ = memory::write_u32(&mut c, fd, 0);
                        Ok(errno::NOTSUP)
                    },
                )?,
                SockRecv => linker.func_wrap(
                    module,
                    name,
                    |mut c: Caller<'_, HostState>,
                     _: i32,
                     _: i32,
                     _: i32,
                     _: i32,
                     size: i32,
                     flags: i32|
                     -> Errno {
                        enter(&c, SockRecv)?;
                        let _ = memory::write_u32(&mut c, size, 0)
                            .and_then(|()| memory::write_u32(&mut c, flags, 0));
                        Ok(errno::NOTSUP)
                    },
                )?,
                SockSend => linker.func_wrap(
                    module,
                    name,
                    |mut c: Caller<'_, HostState>,
                     _: i32,
                     _: i32,
                     _: i32,
                     _: i32,
                     size: i32|
                     -> Errno {
                        enter(&c, SockSend)?;
                        let _ = memory::write_u32(&mut c, size, 0);
                        Ok(errno::NOTSUP)
                    },
                )?,
                SockShutdown => linker.func_wrap(
                    module,
                    name,
                    |c: Caller<'_, HostState>, _: i32, _: i32| -> Errno {
                        enter(&c, SockShutdown)?;
                        Ok(errno::NOTSUP)
                    },
                )?,
            };
        }
    }
    Ok(())
}
