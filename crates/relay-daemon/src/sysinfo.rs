//! Process and system memory figures from /proc (Linux); zero where unavailable.

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
/// (see [`release_free_memory`]). A program with its own global allocator sets this before
/// [`serve`](crate::serve): the default trims glibc's heap, which does nothing for memory
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
    fn own_rss_is_visible() {
        assert!(super::rss_bytes(None).unwrap_or(0) > 0);
        assert!(super::memory().0 > 0);
    }
}
