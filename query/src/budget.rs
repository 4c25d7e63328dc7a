//! What one query allocates, counted by the process's allocator, so that its memory limit
//! bounds everything it does: DataFusion's operators, scalar functions, decoding, encoding the
//! answer.
//!
//! - [`CountingAlloc`] is the binary's global allocator: the system allocator, which also
//!   adds each allocation's size to (and takes each free from) the [`Account`] of the query
//!   the thread is working for, if any.
//! - [`Accounted`] makes a future work for an account: while it is polled, the thread's
//!   allocations are the account's. Tasks DataFusion spawns for a query inherit the account
//!   (through DataFusion's `JoinSetTracer` hook, set by [`install`]).
//! - The query service's limits layer stops a query at its next poll once the account is over
//!   its limit; functions that can grow their output far past their input (`repeat`,
//!   `lpad`, ...) check what they would produce against what the account has left before
//!   allocating it ([`crate::bounded`]).
//!
//! Invariants: an allocation is counted against at most one account, the one of the task
//! that made it; a free by another task counts there (so the count is of live bytes, up to
//! memory handed between queries such as cached Parquet footers, which the caches bound).
//! Nothing here allocates while counting.

use std::alloc::{GlobalAlloc, Layout, System};
use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::task::{Context, Poll};

use datafusion::common::runtime::{JoinSetTracer, set_join_set_tracer};
use futures::future::BoxFuture;

/// Live bytes of one query, and how many it may have.
#[derive(Debug)]
pub struct Account {
    limit: usize,
    used: AtomicIsize,
}

impl Account {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicIsize::new(0),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes allocated and not yet freed (can be below zero after freeing memory that
    /// another account allocated).
    pub fn used(&self) -> isize {
        self.used.load(Ordering::Relaxed)
    }

    /// Bytes it may still allocate.
    pub fn left(&self) -> usize {
        (self.limit as isize).saturating_sub(self.used()).max(0) as usize
    }

    pub fn exceeded(&self) -> bool {
        self.used() > self.limit as isize
    }
}

thread_local! {
    /// The account of the task this thread is polling (borrowed from an [`Enter`] guard).
    static CURRENT: Cell<*const Account> = const { Cell::new(std::ptr::null()) };
}

fn charge(bytes: isize) {
    let _ = CURRENT.try_with(|c| {
        let account = c.get();
        if !account.is_null() {
            // SAFETY: a non-null pointer was set by an `Enter` guard whose `Arc` outlives it.
            unsafe { &*account }
                .used
                .fetch_add(bytes, Ordering::Relaxed);
        }
    });
}

/// The system allocator, counting into the current [`Account`].
pub struct CountingAlloc;

// SAFETY: every method forwards to `System` unchanged; counting touches only an atomic.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            charge(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            charge(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        charge(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            charge(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// The account the current thread works for.
pub fn current() -> Option<Arc<Account>> {
    let p = CURRENT.with(Cell::get);
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` came from `Arc::as_ptr` of an `Arc` an `Enter` guard on this thread holds.
    unsafe {
        Arc::increment_strong_count(p);
        Some(Arc::from_raw(p))
    }
}

/// While alive, this thread's allocations are `account`'s.
struct Enter<'a> {
    _account: &'a Arc<Account>,
    previous: *const Account,
}

impl<'a> Enter<'a> {
    fn new(account: &'a Arc<Account>) -> Self {
        let previous = CURRENT.with(|c| c.replace(Arc::as_ptr(account)));
        Self {
            _account: account,
            previous,
        }
    }
}

impl Drop for Enter<'_> {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

/// A future whose polls allocate for `account`.
pub struct Accounted<F> {
    account: Arc<Account>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Accounted<F> {
    pub fn new(account: Arc<Account>, inner: F) -> Self {
        Self {
            account,
            inner: Box::pin(inner),
        }
    }

    pub fn account(&self) -> &Arc<Account> {
        &self.account
    }
}

impl<F: Future> Future for Accounted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _enter = Enter::new(&this.account);
        this.inner.as_mut().poll(cx)
    }
}

/// Runs `f` with this thread's allocations counted for `account` (one poll of a stream that
/// works for a query).
pub fn counted<T>(account: &Arc<Account>, f: impl FnOnce() -> T) -> T {
    let _enter = Enter::new(account);
    f()
}

/// Hands the spawning task's account to the tasks DataFusion spawns.
struct Inherit;

type Erased = Box<dyn Any + Send>;

impl JoinSetTracer for Inherit {
    fn trace_future(&self, fut: BoxFuture<'static, Erased>) -> BoxFuture<'static, Erased> {
        match current() {
            Some(account) => Box::pin(Accounted::new(account, fut)),
            None => fut,
        }
    }

    fn trace_block(
        &self,
        f: Box<dyn FnOnce() -> Erased + Send>,
    ) -> Box<dyn FnOnce() -> Erased + Send> {
        match current() {
            Some(account) => Box::new(move || {
                let _enter = Enter::new(&account);
                f()
            }),
            None => f,
        }
    }
}

/// Makes DataFusion's spawned tasks inherit their query's account (once per process).
pub fn install() {
    static INHERIT: Inherit = Inherit;
    let _ = set_join_set_tracer(&INHERIT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_what_a_future_and_its_spawned_tasks_allocate() {
        install();
        let account = Account::new(1 << 20);
        let held = Accounted::new(account.clone(), async {
            let mine = vec![1u8; 100_000];
            let spawned =
                datafusion::common::runtime::SpawnedTask::spawn(async { vec![2u8; 300_000] });
            let theirs = spawned.join().await.unwrap();
            (mine, theirs)
        })
        .await;
        assert!(account.used() >= 400_000, "{}", account.used());
        assert!(!account.exceeded());
        drop(held);
        // Freed outside the account: still counted as live there.
        assert!(account.used() >= 400_000);
        let big = Accounted::new(account.clone(), async { vec![0u8; 2 << 20] }).await;
        assert!(account.exceeded());
        assert_eq!(account.left(), 0);
        drop(big);
        assert!(current().is_none());
    }
}
