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

/// `fd_write`/`fd_pwrite` to stdout or stderr: one log line (info or error).
fn write_fd(
    caller: &mut Caller<'_, HostState>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nwritten: i32,
) -> i32 {
    if !is_std(fd) {
        return errno::BADF;
    }
    let mut line = match gather(caller, iovs, iovs_len) {
        Ok(line) => line,
        Err(code) => return code,
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
    errno_of(memory::write_u32(caller, nwritten, total))
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

/// The errno for a write result.
fn errno_of(result: Result<(), pwx_abi::Status>) -> i32 {
    result.map_or(errno::FAULT, |()| errno::SUCCESS)
}

/// `ok` for stdout/stderr, `BADF` for any other fd (Envoy's answer for fd operations).
fn std_only(fd: i32, ok: i32) -> i32 {
    if is_std(fd) { ok } else { errno::BADF }
}

/// Links one WASI function: checks the allocator restriction, then evaluates `$body` (an errno).
macro_rules! wasi_fn {
    ($linker:expr, $module:expr, $call:expr, |$c:ident $(, $arg:ident: $ty:ty)*| $body:expr) => {
        $linker.func_wrap($module, $call.name(), move |mut $c: Caller<'_, HostState> $(, $arg: $ty)*| -> Errno {
            enter(&$c, $call)?;
            Ok($body)
        })?
    };
}

/// Registers every WASI function under both module names.
#[allow(unused_mut, unused_variables)] // one macro shape for every arity
pub(crate) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use WasiCall::*;
    for module in pwx_abi::wasi::MODULES {
        for &call in WasiCall::ALL {
            match call {
                FdWrite => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, fd: i32, iovs: i32, n: i32, out: i32| write_fd(&mut c, fd, iovs, n, out)
                ),
                FdPwrite => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, fd: i32, iovs: i32, n: i32, _offset: i64, out: i32| write_fd(
                        &mut c, fd, iovs, n, out
                    )
                ),
                FdRead => wasi_fn!(linker, module, call, |c, a: i32, b: i32, d: i32, e: i32| {
                    errno::NOSYS
                }),
                FdPread => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, a: i32, b: i32, d: i32, e: i64, f: i32| errno::NOSYS
                ),
                FdSeek => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, fd: i32, a: i64, b: i32, d: i32| {
                        c.data().log(
                            LogLevel::Error,
                            &format!("WASI fd_seek({fd}) is not supported"),
                        );
                        errno::SUCCESS
                    }
                ),
                FdClose => wasi_fn!(linker, module, call, |c, fd: i32| {
                    c.data().log(
                        LogLevel::Error,
                        &format!("WASI fd_close({fd}) is not supported"),
                    );
                    errno::SUCCESS
                }),
                FdFdstatGet => wasi_fn!(linker, module, call, |c, fd: i32, buf: i32| {
                    let mut stat = [0u8; 24];
                    stat[0] = pwx_abi::wasi::FILETYPE_CHARACTER_DEVICE;
                    stat[8..16].copy_from_slice(&pwx_abi::wasi::RIGHT_FD_WRITE.to_le_bytes());
                    if is_std(fd) {
                        errno_of(memory::write(&mut c, buf, &stat))
                    } else {
                        errno::BADF
                    }
                }),
                FdFdstatSetFlags => {
                    wasi_fn!(linker, module, call, |c, fd: i32, flags: i32| errno::NOSYS)
                }
                FdFdstatSetRights => {
                    wasi_fn!(linker, module, call, |c, fd: i32, a: i64, b: i64| std_only(
                        fd,
                        errno::SUCCESS
                    ))
                }
                // No preopened directories.
                FdPrestatGet => wasi_fn!(linker, module, call, |c, fd: i32, buf: i32| errno::BADF),
                FdPrestatDirName => wasi_fn!(linker, module, call, |c, fd: i32, a: i32, b: i32| {
                    errno::NOSYS
                }),
                FdFilestatGet => wasi_fn!(linker, module, call, |c, fd: i32, buf: i32| errno::BADF),
                FdAdvise => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, fd: i32, a: i64, b: i64, d: i32| errno::SUCCESS
                ),
                FdAllocate => {
                    wasi_fn!(linker, module, call, |c, fd: i32, a: i64, b: i64| std_only(
                        fd,
                        errno::SUCCESS
                    ))
                }
                FdDatasync | FdSync => wasi_fn!(linker, module, call, |c, fd: i32| std_only(
                    fd,
                    errno::SUCCESS
                )),
                FdFilestatSetSize => {
                    wasi_fn!(linker, module, call, |c, fd: i32, size: i64| std_only(
                        fd,
                        errno::SUCCESS
                    ))
                }
                FdFilestatSetTimes => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, fd: i32, a: i64, b: i64, d: i32| std_only(fd, errno::SUCCESS)
                ),
                FdReaddir => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, fd: i32, a: i32, b: i32, d: i64, nread: i32| {
                        let _ = memory::write_u32(&mut c, nread, 0);
                        errno::NOTDIR
                    }
                ),
                FdRenumber => wasi_fn!(linker, module, call, |c, fd: i32, to: i32| std_only(
                    fd,
                    errno::NOTSUP
                )),
                FdTell => wasi_fn!(linker, module, call, |c, fd: i32, offset: i32| {
                    if is_std(fd) {
                        errno_of(memory::write_u64(&mut c, offset, 0))
                    } else {
                        errno::BADF
                    }
                }),
                EnvironSizesGet => wasi_fn!(linker, module, call, |c, count: i32, size: i32| {
                    let env = environment(c.data());
                    let bytes: usize = env.iter().map(Vec::len).sum();
                    errno_of(
                        memory::write_u32(&mut c, count, env.len() as u32)
                            .and_then(|()| memory::write_u32(&mut c, size, bytes as u32)),
                    )
                }),
                EnvironGet => {
                    wasi_fn!(linker, module, call, |c, array: i32, buf: i32| environ_get(
                        &mut c, array, buf
                    ))
                }
                ArgsSizesGet => wasi_fn!(linker, module, call, |c, count: i32, size: i32| {
                    errno_of(
                        memory::write_u32(&mut c, count, 0)
                            .and_then(|()| memory::write_u32(&mut c, size, 0)),
                    )
                }),
                ArgsGet => wasi_fn!(linker, module, call, |c, argv: i32, buf: i32| {
                    errno::SUCCESS
                }),
                ClockTimeGet => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, id: i32, precision: i64, out: i32| {
                        match clock_now(id) {
                            Some(now) => errno_of(memory::write_u64(&mut c, out, now)),
                            None => errno::NOTSUP,
                        }
                    }
                ),
                ClockResGet => wasi_fn!(linker, module, call, |c, id: i32, out: i32| {
                    match clock_now(id) {
                        Some(_) => errno_of(memory::write_u64(&mut c, out, 1)),
                        None => errno::NOTSUP,
                    }
                }),
                RandomGet => wasi_fn!(linker, module, call, |c, buf: i32, len: i32| random_get(
                    &mut c, buf, len
                )),
                SchedYield => wasi_fn!(linker, module, call, |c| errno::SUCCESS),
                // The Go runtime requires success; no event ever fires.
                PollOneoff => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, a: i32, b: i32, d: i32, nevents: i32| errno_of(memory::write_u32(
                        &mut c, nevents, 0
                    ))
                ),
                ProcExit => linker.func_wrap(
                    module,
                    call.name(),
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
                PathOpen => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, a: i32, b: i32, d: i32, e: i32, f: i32, g: i64, h: i64, i: i32, j: i32| {
                        errno::NOENT
                    }
                ),
                PathFilestatGet => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, a: i32, b: i32, d: i32, e: i32, f: i32| errno::NOTSUP
                ),
                PathCreateDirectory | PathRemoveDirectory | PathUnlinkFile => {
                    wasi_fn!(linker, module, call, |c, a: i32, b: i32, d: i32| {
                        errno::NOTSUP
                    })
                }
                PathFilestatSetTimes => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, a: i32, b: i32, d: i32, e: i32, f: i64, g: i64, h: i32| errno::NOTSUP
                ),
                PathReadlink => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, a: i32, b: i32, d: i32, e: i32, f: i32, used: i32| {
                        let _ = memory::write_u32(&mut c, used, 0);
                        errno::NOTSUP
                    }
                ),
                PathRename => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, a: i32, b: i32, d: i32, e: i32, f: i32, g: i32| errno::NOTSUP
                ),
                PathLink => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, a: i32, b: i32, d: i32, e: i32, f: i32, g: i32, h: i32| errno::NOTSUP
                ),
                PathSymlink => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, a: i32, b: i32, d: i32, e: i32, f: i32| errno::NOTSUP
                ),
                SockAccept => wasi_fn!(linker, module, call, |c, a: i32, b: i32, fd: i32| {
                    let _ = memory::write_u32(&mut c, fd, 0);
                    errno::NOTSUP
                }),
                SockRecv => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, a: i32, b: i32, d: i32, e: i32, size: i32, flags: i32| {
                        let _ = memory::write_u32(&mut c, size, 0)
                            .and_then(|()| memory::write_u32(&mut c, flags, 0));
                        errno::NOTSUP
                    }
                ),
                SockSend => wasi_fn!(
                    linker,
                    module,
                    call,
                    |c, a: i32, b: i32, d: i32, e: i32, size: i32| {
                        let _ = memory::write_u32(&mut c, size, 0);
                        errno::NOTSUP
                    }
                ),
                SockShutdown => {
                    wasi_fn!(linker, module, call, |c, fd: i32, how: i32| errno::NOTSUP)
                }
            };
        }
    }
    Ok(())
}

/// `environ_get`: the pointer array and the `KEY=VALUE\0` strings.
fn environ_get(caller: &mut Caller<'_, HostState>, array: i32, buf: i32) -> i32 {
    let env = environment(caller.data());
    let mut at = buf as u32;
    for (i, entry) in env.iter().enumerate() {
        let slot = array.wrapping_add((i * 4) as i32);
        if memory::write_u32(caller, slot, at)
            .and_then(|()| memory::write(caller, at as i32, entry))
            .is_err()
        {
            return errno::FAULT;
        }
        at = at.wrapping_add(entry.len() as u32);
    }
    errno::SUCCESS
}

/// `random_get`: CSPRNG bytes, at most 64 KiB per call as in Envoy.
fn random_get(caller: &mut Caller<'_, HostState>, buf: i32, len: i32) -> i32 {
    if len as u32 > pwx_abi::limits::MAX_RANDOM_BYTES {
        return errno::INVAL;
    }
    let mut bytes = vec![0u8; len as u32 as usize];
    if getrandom::fill(&mut bytes).is_err() {
        return errno::INVAL;
    }
    errno_of(memory::write(caller, buf, &bytes))
}
