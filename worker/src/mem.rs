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
