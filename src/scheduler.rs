//! One background thread for every session in the process.
//!
//! Tasks sit in a min-heap of deadlines. `bill_touch` never talks to the
//! scheduler: when a deadline comes, the task re-reads its last use and
//! reports the real next deadline. The thread starts with the first task and
//! exits with the last one, so the library can be unloaded.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock;
use crate::fork::PerProcess;

/// Work the scheduler runs when a deadline comes.
pub trait Task: Send + Sync {
    /// Runs on the background thread at or after its deadline; returns the
    /// next deadline (ns on the `clock::now_ns` clock), or `None` to park.
    fn run(&self, now_ns: u64) -> Option<u64>;
}

/// Longest sleep between checks. Condvar waits count monotonic time, which
/// stops during suspend; waking now and then notices a resume.
const MAX_WAIT: Duration = Duration::from_secs(5);
const PARKED: u64 = u64::MAX;
/// The TLS and HTTP stack needs more than Rust's 2 MiB default in debug
/// builds; the same as a main thread's usual 8 MiB (virtual, mostly untouched).
const STACK_SIZE: usize = 8 << 20;

struct Entry {
    task: Weak<dyn Task>,
    deadline: u64,
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    entries: HashMap<u64, Entry>,
    next_key: u64,
    /// Bumped to tell the running thread to exit.
    generation: u64,
    running: bool,
    handle: Option<JoinHandle<()>>,
    threads_started: u64,
}

pub struct Scheduler {
    state: Mutex<State>,
    cv: Condvar,
}

static SCHED: PerProcess<Arc<Scheduler>> =
    PerProcess::new(|| Arc::new(Scheduler { state: Mutex::new(State::default()), cv: Condvar::new() }));

thread_local! {
    static ON_SCHEDULER: Cell<bool> = const { Cell::new(false) };
}

fn sched() -> Arc<Scheduler> {
    SCHED.get().1.clone()
}

impl Scheduler {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Adds a task. Starts the background thread if none is running.
pub fn register(task: Weak<dyn Task>, deadline: u64) -> u64 {
    let s = sched();
    let mut st = s.lock();
    // A thread told to stop may still be finishing its last task. Join it
    // outside the lock: it needs the lock to notice that it should exit.
    while !st.running {
        let Some(old) = st.handle.take() else { break };
        drop(st);
        let _ = old.join();
        st = s.lock();
    }
    let key = st.next_key;
    st.next_key += 1;
    st.entries.insert(key, Entry { task, deadline });
    st.heap.push(Reverse((deadline, key)));
    if !st.running {
        st.running = true;
        st.threads_started += 1;
        let generation = st.generation;
        let s2 = s.clone();
        let spawned = std::thread::Builder::new()
            .name("bill-scheduler".into())
            .stack_size(STACK_SIZE)
            .spawn(move || run_loop(s2, generation));
        match spawned {
            Ok(h) => st.handle = Some(h),
            // Without a thread, deadlines pass unserved; calls still recover by signing in.
            Err(_) => st.running = false,
        }
    } else {
        s.cv.notify_all();
    }
    key
}

/// Moves a task's deadline (earlier or later).
pub fn reschedule(key: u64, deadline: u64) {
    let s = sched();
    let mut st = s.lock();
    if let Some(e) = st.entries.get_mut(&key) {
        e.deadline = deadline;
        st.heap.push(Reverse((deadline, key)));
        s.cv.notify_all();
    }
}

/// Removes a task. When it was the last one, stops the thread and waits for
/// it (unless called on that thread), bounded by the task in progress.
pub fn unregister(key: u64) {
    let s = sched();
    let handle = {
        let mut st = s.lock();
        if st.entries.remove(&key).is_none() {
            return;
        }
        if !st.entries.is_empty() || !st.running {
            return;
        }
        // Give the memory back, not just the entries: the heap also holds the
        // stale deadlines that reschedules leave until they come due, so its
        // capacity is the peak of the whole run (about 1 MiB at 10,000 sessions).
        st.heap = BinaryHeap::new();
        st.entries = HashMap::new();
        st.generation += 1;
        st.running = false;
        s.cv.notify_all();
        if ON_SCHEDULER.with(Cell::get) {
            None
        } else {
            st.handle.take()
        }
    };
    if let Some(h) = handle {
        let _ = h.join();
    }
}

/// Number of background threads started in this process so far.
pub fn threads_started() -> u64 {
    sched().lock().threads_started
}

/// Whether the background thread is running now.
pub fn is_running() -> bool {
    sched().lock().running
}

fn run_loop(s: Arc<Scheduler>, generation: u64) {
    ON_SCHEDULER.with(|c| c.set(true));
    let mut st = s.lock();
    loop {
        if st.generation != generation {
            return;
        }
        let now = clock::now_ns();
        let mut due: Vec<(u64, u64, Weak<dyn Task>)> = Vec::new();
        let mut due_keys = std::collections::HashSet::new();
        while let Some(&Reverse((d, key))) = st.heap.peek() {
            if d > now {
                break;
            }
            st.heap.pop();
            if let Some(e) = st.entries.get(&key) {
                // A key pushed twice for the same deadline runs once.
                if e.deadline == d && due_keys.insert(key) {
                    due.push((key, d, e.task.clone()));
                }
            }
        }
        if due.is_empty() {
            let wait =
                st.heap.peek().map(|Reverse((d, _))| Duration::from_nanos(d - now)).unwrap_or(MAX_WAIT).min(MAX_WAIT);
            st = s.cv.wait_timeout(st, wait).unwrap_or_else(|p| p.into_inner()).0;
            continue;
        }
        drop(st);
        let results: Vec<(u64, u64, u64)> = due
            .into_iter()
            .map(|(key, d, task)| {
                let next = task.upgrade().and_then(|t| t.run(clock::now_ns())).unwrap_or(PARKED);
                (key, d, next)
            })
            .collect();
        st = s.lock();
        for (key, popped, next) in results {
            let Some(e) = st.entries.get_mut(&key) else { continue };
            // Rescheduled while it ran: that deadline is already in the heap;
            // only an earlier one needs pushing.
            let rescheduled = e.deadline != popped;
            if rescheduled && next >= e.deadline {
                continue;
            }
            e.deadline = next;
            if next != PARKED {
                st.heap.push(Reverse((next, key)));
            }
        }
    }
}
