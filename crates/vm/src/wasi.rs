//! The task ABI: a deterministic subset of WASI preview 1.
//!
//! A task is a WASI *command* (`_start`). Its stdin is the job input, its
//! stdout the job output, its stderr a size-capped log, its arguments the job
//! parameters. There are no files, no sockets and no environment variables;
//! the clock returns the fixed time of the [`TaskSpec`](crate::TaskSpec) and
//! `random_get` returns a BLAKE3 stream keyed by the spec's seed (documented,
//! not secret: a market job's is its id, [`TaskSpec::job_seed`], so the same
//! job gives the same bytes on every worker; other work's is the module and
//! input, [`TaskSpec::task_seed`]).
//!
//! [`TaskSpec::job_seed`]: crate::TaskSpec::job_seed
//! [`TaskSpec::task_seed`]: crate::TaskSpec::task_seed

use wasmparser::ValType;
use wasmtime::{Caller, Extern, Linker, Memory};

/// Shorthand used by the ABI table.
pub(crate) const I32: ValType = ValType::I32;
pub(crate) const I64: ValType = ValType::I64;

/// The import module name of WASI preview 1.
pub const MODULE: &str = "wasi_snapshot_preview1";

// WASI errno values.
const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const ESPIPE: i32 = 70;

/// The allowed imports and their exact signatures (params, results).
pub fn signature(name: &str) -> Option<(&'static [ValType], &'static [ValType])> {
    Some(match name {
        "args_get" | "args_sizes_get" | "environ_get" | "environ_sizes_get" | "clock_res_get"
        | "random_get" | "fd_fdstat_get" | "fd_prestat_get" | "fd_filestat_get" => {
            (&[I32, I32], &[I32])
        }
        "fd_prestat_dir_name" => (&[I32, I32, I32], &[I32]),
        "fd_tell" => (&[I32, I32], &[I32]),
        "path_open" => (&[I32, I32, I32, I32, I32, I64, I64, I32, I32], &[I32]),
        "path_filestat_get" => (&[I32, I32, I32, I32, I32], &[I32]),
        "path_filestat_set_times" => (&[I32, I32, I32, I32, I64, I64, I32], &[I32]),
        "path_unlink_file" | "path_remove_directory" | "path_create_directory" => {
            (&[I32, I32, I32], &[I32])
        }
        "clock_time_get" => (&[I32, I64, I32], &[I32]),
        "fd_write" | "fd_read" => (&[I32, I32, I32, I32], &[I32]),
        "fd_seek" => (&[I32, I64, I32, I32], &[I32]),
        "fd_close" => (&[I32], &[I32]),
        "fd_fdstat_set_flags" => (&[I32, I32], &[I32]),
        "proc_exit" => (&[I32], &[]),
        "sched_yield" => (&[], &[I32]),
        _ => return None,
    })
}

/// The task's view of the world, kept in the wasmtime store.
pub struct Ctx {
    pub(crate) args: Vec<Vec<u8>>,
    pub(crate) stdin: Vec<u8>,
    pub(crate) stdin_pos: usize,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    pub(crate) clock_ns: u64,
    pub(crate) random: blake3::OutputReader,
    pub(crate) max_output: usize,
    pub(crate) max_log: usize,
    pub(crate) output_overflow: bool,
    pub(crate) meter: Meter,
    pub(crate) limits: wasmtime::StoreLimits,
}

/// `proc_exit` unwinds the guest with this error.
#[derive(Debug, thiserror::Error)]
#[error("exit({0})")]
pub(crate) struct Exit(pub i32);

/// The instruction budget ran out.
#[derive(Debug, thiserror::Error)]
#[error("all fuel consumed: the instruction budget ran out")]
pub(crate) struct OutOfFuel;

/// The host side of metering: the rewritten module keeps `limit − used` in
/// its global [`REMAINING`](crate::meter::REMAINING) and calls
/// `proctor.check` when that reaches 0, at a loop header or a function entry.
#[derive(Clone, Debug, Default)]
pub(crate) struct Meter {
    pub(crate) budget: u64,
    /// Instructions between yields: [`YIELD_SLICES`] slices.
    period: u64,
    yield_end: u64,
    /// The count at which the guest next calls the check.
    pub(crate) limit: u64,
    /// The count at the last yield, read by the [`Task`](crate::Task).
    pub(crate) progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Slices per yield. A yield (a fiber switch through wasmtime's async
/// machinery) costs about a microsecond, 3% of a slice of a million
/// instructions; the task reports the slices completed at each yield, so
/// the lottery still draws once per slice, up to this many at a time.
pub(crate) const YIELD_SLICES: u64 = 16;

impl Meter {
    pub(crate) fn new(budget: u64, slice: u64) -> Meter {
        let period = slice.max(1).saturating_mul(YIELD_SLICES);
        let mut m = Meter {
            budget,
            period,
            yield_end: period,
            limit: 0,
            progress: Default::default(),
        };
        m.set_limit(0);
        m
    }

    /// Sets the next limit after `used` instructions and returns the guest's
    /// remaining count, `limit − used`, which must fit its i64.
    pub(crate) fn set_limit(&mut self, used: u64) -> i64 {
        let span = (self.next_limit().max(used + 1) - used).min(i64::MAX as u64);
        self.limit = used + span;
        span as i64
    }

    /// The guest checks again at the next yield, or just past the budget: a
    /// run may use its whole budget but not one instruction more.
    fn next_limit(&self) -> u64 {
        self.yield_end.min(self.budget.saturating_add(1))
    }

    /// Instructions used, given the guest's remaining count (`None`: the
    /// module never started).
    pub(crate) fn used(&self, remaining: Option<i64>) -> u64 {
        remaining.map_or(0, |r| (self.limit as i128 - r as i128).max(0) as u64)
    }
}

/// A store's data that carries a [`Meter`] (a task's or a contract's).
pub(crate) trait Metered {
    fn meter(&self) -> &Meter;
}

impl Metered for Ctx {
    fn meter(&self) -> &Meter {
        &self.meter
    }
}

/// Completes on its second poll: one fiber suspension, the end of a slice.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            std::task::Poll::Pending
        }
    }
}

/// Adds `proctor.check`, the metering callback of rewritten modules.
pub(crate) fn add_check_to_linker(linker: &mut Linker<Ctx>) -> wasmtime::Result<()> {
    let (module, name) = crate::meter::CHECK;
    linker.func_wrap_async(module, name, |mut c: Caller<'_, Ctx>, (): ()| {
        Box::new(async move {
            let Some((g, used)) = count(&mut c) else {
                return Err(wasmtime::Error::msg("metering global missing"));
            };
            let m = &mut c.data_mut().meter;
            if used > m.budget {
                return Err(wasmtime::Error::new(OutOfFuel));
            }
            let end_of_slice = used >= m.yield_end;
            if end_of_slice {
                m.yield_end = (used / m.period + 1).saturating_mul(m.period);
                m.progress.store(used, std::sync::atomic::Ordering::Relaxed);
            }
            let remaining = m.set_limit(used);
            g.set(&mut c, wasmtime::Val::I64(remaining))?;
            if end_of_slice {
                YieldOnce(false).await;
            }
            Ok(())
        })
    })?;
    Ok(())
}

/// Whether a metered run has used more than its budget: a charge by size
/// (a long `memory.copy`, say) comes at once, so the count can pass
/// the budget between two checks. Every call is an exact point of the
/// count, so a host call with an effect that outlives the run (output)
/// stops it here, where the original would already have run out.
pub(crate) fn past_budget<T: Metered>(c: &mut Caller<'_, T>) -> bool {
    count(c).is_some_and(|(_, used)| used > c.data().meter().budget)
}

/// A metered run's global of the remaining count and the instructions it
/// has used (`None`: the module is not metered).
pub(crate) fn count<T: Metered>(c: &mut Caller<'_, T>) -> Option<(wasmtime::Global, u64)> {
    let Some(Extern::Global(g)) = c.get_export(crate::meter::REMAINING) else {
        return None;
    };
    let remaining = g.get(&mut *c).unwrap_i64();
    Some((g, c.data().meter().used(Some(remaining))))
}

/// Charges `units` instructions for work a host call does by size (bytes
/// moved or generated): from a metered run's remaining count (the guest
/// reloads it after the call), or from wasmtime's fuel on the reference
/// engine, so the two keep counting alike. Plain runs are not counted.
pub(crate) fn charge<T>(c: &mut Caller<'_, T>, units: u64) -> wasmtime::Result<()> {
    if units == 0 {
        return Ok(());
    }
    let units_i64 = i64::try_from(units).unwrap_or(i64::MAX);
    if let Some(Extern::Global(g)) = c.get_export(crate::meter::REMAINING) {
        let r = g.get(&mut *c).unwrap_i64();
        g.set(&mut *c, wasmtime::Val::I64(r.saturating_sub(units_i64)))?;
    } else if let Ok(fuel) = c.get_fuel() {
        c.set_fuel(fuel.saturating_sub(units))?;
    }
    Ok(())
}

/// Most iovecs one `fd_read` or `fd_write` takes (POSIX's `IOV_MAX`); more
/// is EINVAL, so one call cannot make the host walk an unbounded list.
pub const MAX_IOVECS: i32 = 1024;

/// The instructions a host call moving `bytes` bytes through `iovecs`
/// buffers is charged on top of its call: one per buffer, and one per 4
/// bytes ([`crate::meter::BULK_SHIFT`]).
fn io_charge(iovecs: i32, bytes: u64) -> u64 {
    iovecs.max(0) as u64 + (bytes >> crate::meter::BULK_SHIFT)
}

/// stdout went over its limit.
#[derive(Debug, thiserror::Error)]
#[error("output exceeds the limit of {0} bytes")]
pub(crate) struct OutputLimit(pub usize);

pub(crate) fn memory<T>(caller: &mut Caller<'_, T>) -> Option<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Some(m),
        _ => None,
    }
}

/// Whether a host copy of `len` bytes from `src` to `dst` goes in pieces of
/// [`COPY_PIECE`]: glibc's `memcpy` moves 2 KiB to 1 MiB with `rep movsb`,
/// which on AMD EPYC runs 10-25x slower when the destination is 1 to 15
/// bytes above the source modulo 4 KiB (the window the meter's copy loop is
/// for, [`crate::meter`]), while pieces of 2 KiB go by vector loads and
/// stores at the usual speed. Where the host's buffers and the guest's
/// memory lie is the allocator's choice, so this is for speed only: the
/// bytes are the same either way.
fn in_pieces(dst: usize, src: usize, len: usize) -> bool {
    len > COPY_PIECE
        && (1..=crate::meter::COPY_WINDOW as usize).contains(&(dst.wrapping_sub(src) & 4095))
}

/// The piece a host copy in the window goes in (see [`in_pieces`]).
const COPY_PIECE: usize = crate::meter::COPY_LOOP_MIN as usize;

/// Copies `src` into `dst` (of the same length), in pieces where
/// [`in_pieces`] says.
fn copy_bytes(dst: &mut [u8], src: &[u8]) {
    if in_pieces(dst.as_ptr() as usize, src.as_ptr() as usize, src.len()) {
        for (d, s) in dst.chunks_mut(COPY_PIECE).zip(src.chunks(COPY_PIECE)) {
            d.copy_from_slice(s);
        }
    } else {
        dst.copy_from_slice(src);
    }
}

/// Appends `bytes` to `out`, in pieces where [`in_pieces`] says.
fn append(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len());
    let end = out.as_ptr() as usize + out.len();
    if in_pieces(end, bytes.as_ptr() as usize, bytes.len()) {
        for piece in bytes.chunks(COPY_PIECE) {
            out.extend_from_slice(piece);
        }
    } else {
        out.extend_from_slice(bytes);
    }
}

/// Bounds-checked access to guest memory.
struct Guest<'a>(&'a mut [u8]);

impl Guest<'_> {
    fn slice(&mut self, ptr: i32, len: u32) -> Option<&mut [u8]> {
        let start = ptr as u32 as usize;
        let end = start.checked_add(len as usize)?;
        self.0.get_mut(start..end)
    }
    fn read_u32(&mut self, ptr: i32) -> Option<u32> {
        Some(u32::from_le_bytes(self.slice(ptr, 4)?.try_into().ok()?))
    }
    fn write(&mut self, ptr: i32, bytes: &[u8]) -> Option<()> {
        copy_bytes(self.slice(ptr, bytes.len() as u32)?, bytes);
        Some(())
    }
    /// The (ptr, len) pairs of an iovec array.
    fn iovecs(&mut self, iovs: i32, count: i32) -> Option<Vec<(i32, u32)>> {
        (0..count as u32)
            .map(|i| {
                let at = (iovs as u32).checked_add(i.checked_mul(8)?)? as i32;
                Some((
                    self.read_u32(at)? as i32,
                    self.read_u32(at.wrapping_add(4))?,
                ))
            })
            .collect()
    }
}

/// Runs `f` over guest memory and the context; EFAULT if memory is missing or
/// an access is out of bounds.
fn with_mem(
    caller: &mut Caller<'_, Ctx>,
    f: impl FnOnce(&mut Guest<'_>, &mut Ctx) -> Option<i32>,
) -> i32 {
    let Some(mem) = memory(caller) else {
        return EFAULT;
    };
    let (data, ctx) = mem.data_and_store_mut(caller);
    f(&mut Guest(data), ctx).unwrap_or(EFAULT)
}

fn sizes_get(list: &[Vec<u8>]) -> (u32, u32) {
    (
        list.len() as u32,
        list.iter().map(|a| a.len() as u32 + 1).sum(),
    )
}

fn list_get(g: &mut Guest<'_>, list: &[Vec<u8>], ptrs: i32, buf: i32) -> Option<i32> {
    let mut off = buf as u32;
    for (i, item) in list.iter().enumerate() {
        g.write(ptrs.wrapping_add(4 * i as i32), &off.to_le_bytes())?;
        g.write(off as i32, item)?;
        g.write((off + item.len() as u32) as i32, &[0])?;
        off += item.len() as u32 + 1;
    }
    Some(SUCCESS)
}

/// Adds the task ABI to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<Ctx>) -> wasmtime::Result<()> {
    linker.func_wrap(
        MODULE,
        "args_sizes_get",
        |mut c: Caller<'_, Ctx>, argc: i32, size: i32| {
            with_mem(&mut c, |g, ctx| {
                let (n, s) = sizes_get(&ctx.args);
                g.write(argc, &n.to_le_bytes())?;
                g.write(size, &s.to_le_bytes())?;
                Some(SUCCESS)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "args_get",
        |mut c: Caller<'_, Ctx>, argv: i32, buf: i32| {
            with_mem(&mut c, |g, ctx| list_get(g, &ctx.args, argv, buf))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "environ_sizes_get",
        |mut c: Caller<'_, Ctx>, n: i32, size: i32| {
            with_mem(&mut c, |g, _| {
                g.write(n, &0u32.to_le_bytes())?;
                g.write(size, &0u32.to_le_bytes())?;
                Some(SUCCESS)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "environ_get",
        |_: Caller<'_, Ctx>, _: i32, _: i32| SUCCESS,
    )?;
    linker.func_wrap(
        MODULE,
        "clock_res_get",
        |mut c: Caller<'_, Ctx>, _id: i32, out: i32| {
            with_mem(&mut c, |g, _| {
                g.write(out, &1u64.to_le_bytes()).map(|_| SUCCESS)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "clock_time_get",
        |mut c: Caller<'_, Ctx>, _id: i32, _prec: i64, out: i32| {
            with_mem(&mut c, |g, ctx| {
                g.write(out, &ctx.clock_ns.to_le_bytes()).map(|_| SUCCESS)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "random_get",
        |mut c: Caller<'_, Ctx>, buf: i32, len: i32| -> wasmtime::Result<i32> {
            charge(
                &mut c,
                u64::from(len as u32).saturating_mul(crate::meter::RANDOM_PER_BYTE),
            )?;
            Ok(with_mem(&mut c, |g, ctx| {
                ctx.random.fill(g.slice(buf, len as u32)?);
                Some(SUCCESS)
            }))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_write",
        |mut c: Caller<'_, Ctx>, fd: i32, iovs: i32, n: i32, written: i32| {
            if !(0..=MAX_IOVECS).contains(&n) {
                return Ok(EINVAL);
            }
            let Some(mem) = memory(&mut c) else {
                return Ok(EFAULT);
            };
            // Charged for what it asks to write, before writing: output
            // is never produced past the budget.
            let Some(vecs) = Guest(mem.data_mut(&mut c)).iovecs(iovs, n) else {
                return Ok(EFAULT);
            };
            let asked: u64 = vecs.iter().map(|&(_, len)| u64::from(len)).sum();
            charge(&mut c, io_charge(n, asked))?;
            if past_budget(&mut c) {
                return Err(wasmtime::Error::new(OutOfFuel));
            }
            let (data, ctx) = mem.data_and_store_mut(&mut c);
            let mut g = Guest(data);
            let mut total = 0u32;
            for (ptr, len) in vecs {
                let Some(bytes) = g.slice(ptr, len) else {
                    return Ok(EFAULT);
                };
                match fd {
                    1 => {
                        if ctx.stdout.len() + bytes.len() > ctx.max_output {
                            ctx.output_overflow = true;
                            return Err(wasmtime::Error::new(OutputLimit(ctx.max_output)));
                        }
                        append(&mut ctx.stdout, bytes);
                    }
                    2 => {
                        let room = ctx.max_log.saturating_sub(ctx.stderr.len());
                        append(&mut ctx.stderr, &bytes[..bytes.len().min(room)]);
                    }
                    _ => return Ok(EBADF),
                }
                total += len;
            }
            Ok(g.write(written, &total.to_le_bytes())
                .map(|_| SUCCESS)
                .unwrap_or(EFAULT))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_read",
        |mut c: Caller<'_, Ctx>, fd: i32, iovs: i32, n: i32, read: i32| {
            if fd != 0 {
                return Ok(EBADF);
            }
            if !(0..=MAX_IOVECS).contains(&n) {
                return Ok(EINVAL);
            }
            let mut total = 0u32;
            let status = with_mem(&mut c, |g, ctx| {
                for (ptr, len) in g.iovecs(iovs, n)? {
                    let rest = &ctx.stdin[ctx.stdin_pos..];
                    let k = rest.len().min(len as usize);
                    g.write(ptr, &rest[..k])?;
                    ctx.stdin_pos += k;
                    total += k as u32;
                }
                g.write(read, &total.to_le_bytes())?;
                Some(SUCCESS)
            });
            // Charged for the bytes it delivered.
            charge(&mut c, io_charge(n, total.into()))?;
            Ok(status)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_seek",
        |_: Caller<'_, Ctx>, fd: i32, _: i64, _: i32, _: i32| {
            if (0..=2).contains(&fd) { ESPIPE } else { EBADF }
        },
    )?;
    // Standard streams are pipes: no position (zlib's gzip stream asks).
    linker.func_wrap(MODULE, "fd_tell", |_: Caller<'_, Ctx>, fd: i32, _: i32| {
        if (0..=2).contains(&fd) { ESPIPE } else { EBADF }
    })?;
    linker.func_wrap(MODULE, "fd_close", |_: Caller<'_, Ctx>, fd: i32| {
        if (0..=2).contains(&fd) {
            SUCCESS
        } else {
            EBADF
        }
    })?;
    linker.func_wrap(
        MODULE,
        "fd_fdstat_get",
        |mut c: Caller<'_, Ctx>, fd: i32, out: i32| {
            if !(0..=2).contains(&fd) {
                return EBADF;
            }
            with_mem(&mut c, |g, _| {
                // filetype unknown (not a tty, so stdio is fully buffered), no flags, all rights.
                let mut stat = [0u8; 24];
                stat[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
                stat[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
                g.write(out, &stat).map(|_| SUCCESS)
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_fdstat_set_flags",
        |_: Caller<'_, Ctx>, _: i32, _: i32| EINVAL,
    )?;
    // No preopened directories: EBADF ends libc's preopen scan at fd 3.
    linker.func_wrap(
        MODULE,
        "fd_prestat_get",
        |_: Caller<'_, Ctx>, _: i32, _: i32| EBADF,
    )?;
    linker.func_wrap(
        MODULE,
        "fd_prestat_dir_name",
        |_: Caller<'_, Ctx>, _: i32, _: i32, _: i32| EBADF,
    )?;
    linker.func_wrap(
        MODULE,
        "fd_filestat_get",
        |_: Caller<'_, Ctx>, _: i32, _: i32| EBADF,
    )?;
    // Paths are relative to a directory descriptor, and a task has none
    // (no preopens): programs that can open files link, and every path
    // operation fails with EBADF, as WASI says for a descriptor that is not
    // open.
    type Fd = i32;
    linker.func_wrap(
        MODULE,
        "path_open",
        |_: Caller<'_, Ctx>,
         _: Fd,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i64,
         _: i64,
         _: i32,
         _: i32| { EBADF },
    )?;
    linker.func_wrap(
        MODULE,
        "path_filestat_get",
        |_: Caller<'_, Ctx>, _: Fd, _: i32, _: i32, _: i32, _: i32| EBADF,
    )?;
    linker.func_wrap(
        MODULE,
        "path_filestat_set_times",
        |_: Caller<'_, Ctx>, _: Fd, _: i32, _: i32, _: i32, _: i64, _: i64, _: i32| EBADF,
    )?;
    for name in [
        "path_unlink_file",
        "path_remove_directory",
        "path_create_directory",
    ] {
        linker.func_wrap(MODULE, name, |_: Caller<'_, Ctx>, _: Fd, _: i32, _: i32| {
            EBADF
        })?;
    }
    linker.func_wrap(MODULE, "sched_yield", |_: Caller<'_, Ctx>| SUCCESS)?;
    linker.func_wrap(
        MODULE,
        "proc_exit",
        |_: Caller<'_, Ctx>, code: i32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::new(Exit(code)))
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{append, copy_bytes};

    #[test]
    fn copies_in_and_out_of_the_window_move_every_byte_and_no_other() {
        // Source and destination in one buffer, so their offsets decide
        // the pointers' distance modulo 4 KiB: in the window (1 to 15, past
        // 2,048 bytes: pieces, the last one short) and out of it.
        let cases = [
            (7, 30_001),
            (15, 2049),
            (1, 4096 * 3 + 5),
            (7, 2048),
            (16, 30_001),
            (0, 10_000),
        ];
        for (gap, len) in cases {
            let mut buf: Vec<u8> = (0..200_000u32)
                .map(|i| ((i * 7) ^ (i >> 8)) as u8)
                .collect();
            let before = buf.clone();
            let (low, high) = buf.split_at_mut(90_000);
            let src = &low[1000..1000 + len];
            let at = (gap + 4096 * 100 - (90_000 - 1000)) % 4096;
            let dst = &mut high[at..at + len];
            let distance = (dst.as_ptr() as usize).wrapping_sub(src.as_ptr() as usize);
            assert_eq!(distance & 4095, gap);
            copy_bytes(dst, src);
            let moved = 90_000 + at..90_000 + at + len;
            assert_eq!(&buf[moved.clone()], &before[1000..1000 + len], "gap {gap}");
            assert_eq!(&buf[..moved.start], &before[..moved.start]);
            assert_eq!(&buf[moved.end..], &before[moved.end..]);
        }
    }

    #[test]
    fn appends_in_and_out_of_the_window_keep_every_byte() {
        // The bytes appended come from where their distance to the vector's
        // end, modulo 4 KiB, is the gap wanted.
        let source: Vec<u8> = (0..100_000u32)
            .map(|i| ((i * 13) ^ (i >> 7)) as u8)
            .collect();
        for (gap, len) in [(7, 30_001), (15, 2049), (7, 2048), (16, 30_001), (0, 5000)] {
            let mut out = Vec::with_capacity(200_000);
            out.extend_from_slice(b"kept");
            let end = out.as_ptr() as usize + out.len();
            let at = (end.wrapping_sub(gap).wrapping_sub(source.as_ptr() as usize)) & 4095;
            let bytes = &source[at..at + len];
            assert_eq!(end.wrapping_sub(bytes.as_ptr() as usize) & 4095, gap);
            append(&mut out, bytes);
            assert_eq!(&out[..4], b"kept");
            assert_eq!(&out[4..], bytes, "gap {gap}");
        }
    }
}
