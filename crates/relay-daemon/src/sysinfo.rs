//! Process and system memory figures from /proc (Linux), and the process's CPU time; zero or
//! `None` where unavailable.

/// Resident set size of a process in bytes.
pub fn rss_bytes(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/statm"),
        None => "/proc/self/statm".to_string(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// CPU time this process has used so far, user and system, all threads. `None` where the
/// operating system does not say.
pub fn cpu_time() -> Option<std::time::Duration> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `usage` points to writable memory of the size and alignment of `rusage`, which
    // getrusage fills entirely when it returns 0; it is read only in that case.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return None;
        }
        usage.assume_init()
    };
    let micros = |t: libc::timeval| {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_usec).unwrap_or(0)
    };
    Some(std::time::Duration::from_micros(
        micros(usage.ru_utime) + micros(usage.ru_stime),
    ))
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 on error, handled below.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

/// The allocator's own way of returning freed memory, set by the program that links one in.
static MEMORY_RELEASER: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Tells the daemon how to give freed heap back to the operating system when it goes idle
/// (the router calls `release_free_memory`). A program with its own global allocator sets this
/// before [`serve`](crate::serve): the default trims glibc's heap, which does nothing for memory
/// another allocator holds. Only the first call counts.
pub fn set_memory_releaser(release: fn()) {
    let _ = MEMORY_RELEASER.set(release);
}

/// Returns freed heap memory to the operating system (allocators keep it otherwise): through
/// the releaser set with [`set_memory_releaser`], else glibc's `malloc_trim`.
pub fn release_free_memory() {
    if let Some(release) = MEMORY_RELEASER.get() {
        release();
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers and
    // is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// (total, available) system memory in bytes.
pub fn memory() -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return (0, 0);
    };
    let field = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_cpu_time_counts_work_done() {
        let before = super::cpu_time().expect("getrusage works on Linux");
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = super::cpu_time().expect("getrusage works on Linux");
        assert!(
            after >= before + std::time::Duration::from_millis(20),
            "{before:?} -> {after:?}"
        );
    }

    #[test]
    fn own_rss_is_visible() {
        assert!(super::rss_bytes(None).unwrap_or(0) > 0);
        assert!(super::memory().0 > 0);
    }
}
