//! The active faults and how many requests each has left.

use crate::fault::{Fault, FaultMode, FaultTarget};

struct ActiveFault {
    id: u64,
    fault: Fault,
    remaining: u32,
}

#[derive(Default)]
pub(crate) struct Faults {
    active: Vec<ActiveFault>,
    next_id: u64,
}

impl Faults {
    /// The first fault for this class of request, counted down.
    pub fn take(&mut self, class: FaultTarget) -> Option<Fault> {
        let i = self.active.iter().position(|f| {
            f.fault.mode != FaultMode::Refuse && (f.fault.target == FaultTarget::All || f.fault.target == class)
        })?;
        let f = &mut self.active[i];
        let fault = f.fault.clone();
        if f.remaining > 0 {
            f.remaining -= 1;
            if f.remaining == 0 {
                self.active.remove(i);
            }
        }
        Some(fault)
    }

    pub fn refusing(&self) -> bool {
        self.active.iter().any(|f| f.fault.mode == FaultMode::Refuse)
    }

    /// Active faults; `count` is what remains (0 = until cleared).
    pub fn list(&self) -> Vec<Fault> {
        self.active.iter().map(|f| Fault { count: f.remaining, ..f.fault.clone() }).collect()
    }

    /// Adds a fault, after clearing the others if `replace`; `mode: none`
    /// only clears. Returns the new fault's id.
    pub fn set(&mut self, fault: Fault, replace: bool) -> Option<u64> {
        if replace || fault.mode == FaultMode::None {
            self.active.clear();
        }
        if fault.mode == FaultMode::None {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.active.push(ActiveFault { id, remaining: fault.count, fault });
        Some(id)
    }

    pub fn remove(&mut self, id: u64) {
        self.active.retain(|f| f.id != id);
    }

    pub fn clear(&mut self) {
        self.active.clear();
    }
}
