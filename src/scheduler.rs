//! One thread keeps every session's deadline; the network work that comes
//! due runs on a bounded, elastic pool of workers.
//!
//! Tasks sit in a min-heap of deadlines. `bill_touch` never talks to the
//! scheduler: when a deadline comes, the task re-reads its last use and
//! either reports the real next deadline or asks for work. Work is queued in
//! earliest-deadline order and taken by workers, at most as many per limit
//! group (devKey and organization) as that group allows in flight, so a
//! worker never sits behind a full organization while another could go.
//!
//! Workers start when work is queued and none is idle, up to the cap, and
//! exit after a short idle period: when nothing is due, the scheduler is the
//! process's only libbill thread. Both exit with the last task, so the
//! library can be unloaded.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock;
use crate::fork::PerProcess;

/// What a task needs when its deadline comes.
pub enum Due {
    /// Nothing now; look again at this deadline (ns on the `clock::now_ns` clock).
    At(u64),
    /// Nothing until rescheduled.
    Park,
    /// Network work: run `Task::work` on a worker. `deadline_ns` orders the
    /// queue; `group` and `max` bound how many of one group run at once.
    Work { deadline_ns: u64, group: u64, max: u32 },
}

/// Work the scheduler runs when a deadline comes.
pub trait Task: Send + Sync {
    /// On the scheduler thread, at or after the deadline. Must not block.
    fn poll(&self, now_ns: u64) -> Due;
    /// On a worker: the network work. Returns the next deadline, or `None` to park.
    fn work(&self) -> Option<u64>;
}

/// Longest sleep between checks. Condvar waits count monotonic time, which
/// stops during suspend; waking now and then notices a resume.
const MAX_WAIT: Duration = Duration::from_secs(5);
/// How long an idle worker waits for more work before it exits.
const WORKER_IDLE: Duration = Duration::from_millis(500);
/// Work that waits this long for a worker gets another one. Renewals that
/// finish quickly (a nearby server) are drained by one or two workers; slow
/// ones (BILL's hundreds of milliseconds) bring more, up to the cap.
const SPAWN_AFTER_NS: u64 = 10_000_000;
const PARKED: u64 = u64::MAX;
/// The TLS and HTTP stack needs more than Rust's 2 MiB default in debug
/// builds; the same as a main thread's usual 8 MiB (virtual, mostly untouched).
const STACK_SIZE: usize = 8 << 20;
/// Workers at most, unless a host sets another cap. At BILL's latency
/// (~300 ms a sign-in) 64 workers renew about 200 sessions a second.
pub const DEFAULT_MAX_WORKERS: u32 = 64;
pub const MAX_WORKERS_LIMIT: u32 = 1024;

struct Entry {
    task: Weak<dyn Task>,
    deadline: u64,
    /// Queued for or running on a worker.
    working: bool,
}

struct Queued {
    task: Weak<dyn Task>,
    popped: u64,
    queued_at: u64,
    group: u64,
    max: u32,
}

struct State {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    entries: HashMap<u64, Entry>,
    next_key: u64,
    /// Bumped to tell the running threads to exit.
    generation: u64,
    running: bool,
    handle: Option<JoinHandle<()>>,
    threads_started: u64,
    /// Work in earliest-deadline order: (deadline, key).
    queue: BTreeSet<(u64, u64)>,
    queued: HashMap<u64, Queued>,
    /// Work running per group.
    busy: HashMap<u64, u32>,
    workers: u32,
    max_workers: u32,
    peak_workers: u32,
    worker_handles: Vec<JoinHandle<()>>,
}

impl Default for State {
    fn default() -> Self {
        State {
            heap: BinaryHeap::new(),
            entries: HashMap::new(),
            next_key: 0,
            generation: 0,
            running: false,
            handle: None,
            threads_started: 0,
            queue: BTreeSet::new(),
            queued: HashMap::new(),
            busy: HashMap::new(),
            workers: 0,
            max_workers: DEFAULT_MAX_WORKERS,
            peak_workers: 0,
            worker_handles: Vec::new(),
        }
    }
}

pub struct Scheduler {
    state: Mutex<State>,
    /// Wakes the scheduler thread.
    cv: Condvar,
    /// Wakes idle workers.
    work_cv: Condvar,
}

static SCHED: PerProcess<Arc<Scheduler>> = PerProcess::new(|| {
    Arc::new(Scheduler { state: Mutex::new(State::default()), cv: Condvar::new(), work_cv: Condvar::new() })
});

thread_local! {
    static ON_BACKGROUND: Cell<bool> = const { Cell::new(false) };
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
    // Threads told to stop may still be finishing their last task. Join them
    // outside the lock: they need the lock to notice that they should exit.
    while !st.running && (st.handle.is_some() || !st.worker_handles.is_empty()) {
        let old: Vec<JoinHandle<()>> = st.handle.take().into_iter().chain(st.worker_handles.drain(..)).collect();
        drop(st);
        for h in old {
            let _ = h.join();
        }
        st = s.lock();
    }
    let key = st.next_key;
    st.next_key += 1;
    st.entries.insert(key, Entry { task, deadline, working: false });
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
        if !e.working {
            st.heap.push(Reverse((deadline, key)));
            s.cv.notify_all();
        }
    }
}

/// Removes a task. When it was the last one, stops the threads and waits for
/// them (unless called on one of them), bounded by the work in progress.
pub fn unregister(key: u64) {
    let s = sched();
    let handles = {
        let mut st = s.lock();
        if st.entries.remove(&key).is_none() {
            return;
        }
        if let Some(q) = st.queued.remove(&key) {
            st.queue.remove(&(q.popped, key));
        }
        if !st.entries.is_empty() || !st.running {
            return;
        }
        // Give the memory back, not just the entries: the heap also holds the
        // stale deadlines that reschedules leave until they come due, so its
        // capacity is the peak of the whole run (about 1 MiB at 10,000 sessions).
        st.heap = BinaryHeap::new();
        st.entries = HashMap::new();
        st.queue = BTreeSet::new();
        st.queued = HashMap::new();
        st.generation += 1;
        st.running = false;
        s.cv.notify_all();
        s.work_cv.notify_all();
        if ON_BACKGROUND.with(Cell::get) {
            Vec::new()
        } else {
            st.handle.take().into_iter().chain(st.worker_handles.drain(..)).collect()
        }
    };
    for h in handles {
        let _ = h.join();
    }
}

/// Number of scheduler threads started in this process so far.
pub fn threads_started() -> u64 {
    sched().lock().threads_started
}

/// Whether the scheduler thread is running now.
pub fn is_running() -> bool {
    sched().lock().running
}

/// Workers alive now, and the most alive at once so far.
pub fn workers() -> (u32, u32) {
    let s = sched();
    let st = s.lock();
    (st.workers, st.peak_workers)
}

/// Sets the most workers that run renewals at once (1 = one at a time).
/// Returns false, changing nothing, outside 1..=`MAX_WORKERS_LIMIT`.
pub fn set_max_workers(n: u32) -> bool {
    if !(1..=MAX_WORKERS_LIMIT).contains(&n) {
        return false;
    }
    let s = sched();
    let mut st = s.lock();
    st.max_workers = n;
    spawn_workers(&s, &mut st);
    true
}

/// The current cap on workers.
pub fn max_workers() -> u32 {
    sched().lock().max_workers
}

fn run_loop(s: Arc<Scheduler>, generation: u64) {
    ON_BACKGROUND.with(|c| c.set(true));
    let mut st = s.lock();
    loop {
        if st.generation != generation {
            return;
        }
        let now = clock::now_ns();
        let mut due: Vec<(u64, u64, Arc<dyn Task>)> = Vec::new();
        while let Some(&Reverse((d, key))) = st.heap.peek() {
            if d > now {
                break;
            }
            st.heap.pop();
            if let Some(e) = st.entries.get_mut(&key) {
                // A stale deadline (rescheduled since), or one already taken, runs nothing.
                if e.deadline != d || e.working {
                    continue;
                }
                match e.task.upgrade() {
                    Some(t) => {
                        // Marked now so that a key pushed twice for one deadline runs once.
                        e.working = true;
                        due.push((key, d, t));
                    }
                    None => e.deadline = PARKED,
                }
            }
        }
        if due.is_empty() {
            spawn_workers(&s, &mut st);
            // While work is queued, look again soon: it may need more workers.
            let cap = if st.queue.is_empty() { MAX_WAIT } else { Duration::from_nanos(SPAWN_AFTER_NS) };
            let wait = st.heap.peek().map(|Reverse((d, _))| Duration::from_nanos(d - now)).unwrap_or(MAX_WAIT).min(cap);
            st = s.cv.wait_timeout(st, wait).unwrap_or_else(|p| p.into_inner()).0;
            continue;
        }
        // Polls run without the lock: they may deliver events.
        drop(st);
        let polled: Vec<(u64, u64, Due, Weak<dyn Task>)> = due
            .into_iter()
            .map(|(key, d, task)| {
                let r = task.poll(clock::now_ns());
                (key, d, r, Arc::downgrade(&task))
            })
            .collect();
        st = s.lock();
        for (key, popped, r, task) in polled {
            match r {
                Due::Work { deadline_ns, group, max } => {
                    if st.entries.contains_key(&key) {
                        st.queue.insert((deadline_ns, key));
                        st.queued.insert(key, Queued { task, popped, queued_at: now, group, max: max.max(1) });
                    }
                }
                Due::At(next) => finish(&mut st, key, popped, next),
                Due::Park => finish(&mut st, key, popped, PARKED),
            }
        }
        spawn_workers(&s, &mut st);
    }
}

/// Records a task's next deadline after a poll or a work item. A deadline
/// set by `reschedule` meanwhile wins unless this one is earlier.
fn finish(st: &mut State, key: u64, popped: u64, next: u64) {
    let Some(e) = st.entries.get_mut(&key) else { return };
    e.working = false;
    let rescheduled = e.deadline != popped;
    let next = if rescheduled { next.min(e.deadline) } else { next };
    e.deadline = next;
    if next != PARKED {
        st.heap.push(Reverse((next, key)));
    }
}

/// How many queued items could start now (per group, what its free slots
/// allow), and how many of those have waited `SPAWN_AFTER_NS` or more.
fn startable(st: &State, now: u64) -> (u32, u32) {
    let mut room: HashMap<u64, u32> = HashMap::new();
    let (mut n, mut stale) = (0, 0);
    for (_, key) in &st.queue {
        let Some(q) = st.queued.get(key) else { continue };
        let free =
            room.entry(q.group).or_insert_with(|| q.max.saturating_sub(st.busy.get(&q.group).copied().unwrap_or(0)));
        if *free > 0 {
            *free -= 1;
            n += 1;
            if now.saturating_sub(q.queued_at) >= SPAWN_AFTER_NS {
                stale += 1;
            }
        }
    }
    (n, stale)
}

/// Starts workers for queued work: one as soon as there is any, more while
/// startable work waits too long.
fn spawn_workers(s: &Arc<Scheduler>, st: &mut State) {
    if st.queue.is_empty() || !st.running {
        return;
    }
    s.work_cv.notify_all();
    // Finished workers' handles are joined here, off every hot path.
    st.worker_handles.retain(|h| !h.is_finished());
    let running: u32 = st.busy.values().sum();
    let (startable, stale) = startable(st, clock::now_ns());
    let wanted = if st.workers == 0 { startable.min(1) } else { stale };
    while st.workers.saturating_sub(running) < wanted && st.workers < st.max_workers {
        let s2 = s.clone();
        let generation = st.generation;
        let spawned = std::thread::Builder::new()
            .name("bill-renewal".into())
            .stack_size(STACK_SIZE)
            .spawn(move || worker_loop(s2, generation));
        match spawned {
            Ok(h) => {
                st.workers += 1;
                st.peak_workers = st.peak_workers.max(st.workers);
                st.worker_handles.push(h);
            }
            // The workers already running will get to it.
            Err(_) => break,
        }
    }
}

/// The earliest queued work whose group has a free slot.
fn take_work(st: &mut State) -> Option<(u64, Queued)> {
    let mut found = None;
    for &(d, key) in &st.queue {
        let Some(q) = st.queued.get(&key) else { continue };
        if st.busy.get(&q.group).copied().unwrap_or(0) < q.max {
            found = Some((d, key));
            break;
        }
    }
    let (d, key) = found?;
    st.queue.remove(&(d, key));
    let q = st.queued.remove(&key)?;
    *st.busy.entry(q.group).or_insert(0) += 1;
    Some((key, q))
}

fn worker_loop(s: Arc<Scheduler>, generation: u64) {
    ON_BACKGROUND.with(|c| c.set(true));
    let mut st = s.lock();
    let mut idle_once = false;
    loop {
        if st.generation != generation {
            break;
        }
        let Some((key, q)) = take_work(&mut st) else {
            if idle_once {
                break;
            }
            let (g, timeout) = s.work_cv.wait_timeout(st, WORKER_IDLE).unwrap_or_else(|p| p.into_inner());
            st = g;
            idle_once = timeout.timed_out();
            continue;
        };
        idle_once = false;
        drop(st);
        let next = q.task.upgrade().and_then(|t| t.work()).unwrap_or(PARKED);
        st = s.lock();
        if let Some(n) = st.busy.get_mut(&q.group) {
            *n -= 1;
            if *n == 0 {
                st.busy.remove(&q.group);
            }
        }
        if st.generation != generation {
            break;
        }
        finish(&mut st, key, q.popped, next);
        // A slot in this group is free again, and the scheduler may have an earlier deadline.
        s.work_cv.notify_all();
        s.cv.notify_all();
    }
    st.workers -= 1;
}
