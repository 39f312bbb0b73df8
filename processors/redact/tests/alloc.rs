#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
// The counting allocator below needs `unsafe impl GlobalAlloc`; it only forwards to the
// system allocator.
#![allow(unsafe_code)]
//! Redacting an event in which nothing is found allocates nothing.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        COUNT.with(|c| c.set(c.get() + 1));
        // SAFETY: same layout as given to us.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        COUNT.with(|c| c.set(c.get() + 1));
        // SAFETY: as for `dealloc` and `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations(f: impl FnOnce()) -> usize {
    let before = COUNT.with(Cell::get);
    f();
    COUNT.with(Cell::get) - before
}

#[test]
fn clean_events_cost_no_allocation() {
    let r = common::redactor();
    for kind in ["build", "artifact", "deploy", "runtime", "data", "approval"] {
        let mut e = common::event(kind);
        common::set_field(
            &mut e,
            "annotations.log",
            "step 3/7: cargo test --release took 1500ms (v1.4.2, eu-west-1)",
        );
        r.redact_event(&mut e); // warm up lazily initialised state
        let n = allocations(|| {
            assert!(r.redact_event(&mut e).is_empty());
        });
        assert_eq!(n, 0, "{kind}: {n} allocations");
    }
    let n = allocations(|| {
        let (o, red) = r.redact_str("data.message", "connection to api:8080 reset after 30s");
        assert_eq!(o, provenant_redact::Outcome::Unchanged);
        assert!(red.is_empty());
    });
    assert_eq!(n, 0);
}
