//! Handing freed memory back to the system, so a pod's resident memory is
//! what the data holds rather than what loading or a burst of scans once
//! needed. Below the store and the loader, which both free large buffers.

/// Hands the memory a load freed (decode buffers, sort scratch, an old
/// generation) back to the system, so the pod's RSS is what the data holds
/// rather than what loading once needed (glibc keeps freed heap otherwise).
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Makes every allocation of 4 MiB or more its own mapping, returned to the
/// system when freed. glibc otherwise raises its mapping threshold after the
/// first large free and serves later large buffers (raster grids of
/// concurrent scans, decode batches) from heap arenas it never shrinks, so a
/// worker's RSS would keep the high-water mark of its busiest second.
pub fn return_large_buffers_at_once() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's policy for future allocations.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

/// This process's resident and peak resident bytes (`VmRSS`, `VmHWM`; Linux,
/// zeros elsewhere).
pub fn resident() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Asks for transparent huge pages behind the 2 MiB-aligned interior of `v`
/// (many machines enable them only on request), before its first touch, so
/// random reads or increments over a large buffer cost no TLB misses. A
/// no-op where the system has none.
pub fn advise_huge_pages<T>(v: &[T]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = v.as_ptr() as usize;
        let end = start + std::mem::size_of_val(v);
        let (a, b) = (start.next_multiple_of(HUGE), end & !(HUGE - 1));
        if b > a {
            // SAFETY: [a, b) lies inside the allocation of `v`, which this
            // call neither reads nor writes; MADV_HUGEPAGE only changes how
            // the kernel backs the range, never its contents. Failure (no
            // THP) is harmless.
            unsafe {
                libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}
