//! Freed memory stays with the process, so each training step reuses the
//! pages the step before it faulted in.
//!
//! Why: glibc's malloc gives every allocation above its mmap threshold
//! (adaptive, at most 32 MiB) a mapping of its own and unmaps it on free,
//! and threads other than `main` (every stage computes on a pool thread)
//! allocate from arenas whose heaps are capped at 64 MiB, so their larger
//! blocks are mapped afresh whatever the threshold. A SmolLM2 DPO step
//! allocates its logits, their gradient and the embedding's gradient at
//! 100–200 MB each, every step, and the kernel faults in and zeroes each of
//! their pages again: 4.1 million page faults in a 3-step, 1-thread run of
//! the `smollm2_dpo_step` bench's child.
//!
//! [`keep_freed_memory`] makes every thread allocate from `main`'s heap
//! (one arena, which grows without a cap), maps no block on its own, and
//! never trims the heap's top: the same run took 1.45 million faults, its
//! warm steps 14.8–14.9 s instead of 20.2–20.4 s (BENCHMARKS.md, "Freed
//! memory kept"). The cost: the process keeps its peak heap until it
//! exits, which for `sweep` is the peak of the stages it runs at once.
//! Numbers do not change: only where the bytes live does.
//!
//! Only for real-size models: with the tiny profile's two stages at once,
//! each allocating many small tensors, the one arena they then share made
//! a seed-0 Table 1 6–13% slower, so `main` keeps glibc's defaults there.

/// The glibc tunables' prefix for malloc's settings: when the user set any
/// of them (`GLIBC_TUNABLES=glibc.malloc.…`), their choice stands.
const USER_MALLOC_TUNABLES: &str = "glibc.malloc.";

/// Keeps freed memory in the process (see the module docs), unless the
/// user tuned glibc's malloc. Does nothing on other C libraries.
///
/// Call it first thing in `main`, before threads allocate: the single
/// arena applies to threads that have not allocated yet.
pub fn keep_freed_memory() {
    if !user_tuned_malloc(std::env::var("GLIBC_TUNABLES").ok().as_deref()) {
        set_malloc_to_keep_freed_memory();
    }
}

/// Whether `GLIBC_TUNABLES` (`tunables`, if set) holds a malloc setting.
fn user_tuned_malloc(tunables: Option<&str>) -> bool {
    tunables.is_some_and(|t| t.split(':').any(|t| t.starts_with(USER_MALLOC_TUNABLES)))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_malloc_to_keep_freed_memory() {
    // SAFETY: mallopt only changes malloc's parameters; any thread may
    // call it at any time (glibc takes the arena lock). A refused setting
    // (return 0) leaves glibc's default, which is correct, only slower.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        // -1: never trim (mallopt(3)); any int would trim a top above it,
        // and a step frees more than 2 GiB at once.
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_malloc_to_keep_freed_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malloc_tunable_of_the_user_wins() {
        assert!(!user_tuned_malloc(None));
        assert!(!user_tuned_malloc(Some("")));
        assert!(!user_tuned_malloc(Some("glibc.pthread.rseq=0")));
        assert!(user_tuned_malloc(Some("glibc.malloc.arena_max=4")));
        assert!(user_tuned_malloc(Some(
            "glibc.pthread.rseq=0:glibc.malloc.trim_threshold=0"
        )));
    }
}
