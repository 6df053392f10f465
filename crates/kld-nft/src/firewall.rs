//! The operations: check, diff, apply (with an optional confirmation
//! deadline), confirm, rollback, live set changes, and reading the table.

use std::time::Duration;

use crate::addr::Network;
use crate::live::{Difference, LiveTable};
use crate::nft::Nft;
use crate::render::{render, Ruleset, FAMILY, TABLE};
use crate::state::{
    self, Journal, Pending, StateDir, APPLIED, BOOT, PREVIOUS, STAGED_APPLIED, STAGED_PREVIOUS,
};
use crate::zones::ZoneFile;
use crate::Error;

/// The lines that make a file replace table `inet kld` whatever exists.
fn replace_header() -> String {
    format!("table {FAMILY} {TABLE} {{}}\ndelete table {FAMILY} {TABLE}\n")
}

/// A listing with what traffic changes taken out: counter values, and the
/// elements of kld's dynamic (connection limit) sets, which come and go as
/// connections do. What remains must be identical after a restore.
fn comparable(listing: &str) -> String {
    let mut out = String::with_capacity(listing.len());
    let mut set: Option<&str> = None;
    let mut skipping = false;
    for line in listing.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("set ").and_then(|r| r.strip_suffix(" {")) {
            set = Some(name);
        } else if t == "}" {
            set = None;
        }
        let dynamic = set.is_some_and(|s| s.starts_with("kld_conn"));
        if dynamic && t.starts_with("elements = ") {
            skipping = !t.ends_with('}');
            continue;
        }
        if skipping {
            skipping = !t.ends_with('}');
            continue;
        }
        let mut words = line.split(' ').peekable();
        let mut kept: Vec<&str> = Vec::new();
        while let Some(w) = words.next() {
            kept.push(w);
            if w.ends_with("counter") && words.peek() == Some(&"packets") {
                // `packets N bytes M`
                for _ in 0..4 {
                    words.next();
                }
            }
        }
        out.push_str(&kept.join(" "));
        out.push('\n');
    }
    out
}

/// kld's nftables: the `nft` it runs and the state directory it keeps.
#[derive(Debug, Clone)]
pub struct Firewall {
    nft: Nft,
    state: StateDir,
}

/// What [`Firewall::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The number of rules now in table `inet kld`.
    pub rules: usize,
    /// With a deadline: the change that reverts unless confirmed.
    pub pending: Option<Pending>,
}

/// What [`Firewall::revert_when_due`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revert {
    /// The change was not confirmed in time: the previous ruleset is back.
    Reverted,
    /// The change was confirmed, rolled back or replaced: nothing to do.
    NotNeeded,
}

/// What [`Firewall::recover`] found of an apply that was interrupted (the
/// process killed, the machine stopped) and what it did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// The apply had not loaded and verified its ruleset: the table as it
    /// was before it is live again (it may never have left), the state
    /// files as they were.
    Undone {
        /// The apply's token.
        token: String,
    },
    /// The apply had loaded and verified its ruleset: its state files are
    /// finished (with a deadline, the change now awaits confirmation).
    Finished {
        /// The apply's token.
        token: String,
    },
}

/// What the state directory says, read without changing anything (for
/// `knft show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// A change awaiting confirmation in this boot.
    pub pending: Option<Pending>,
    /// An apply that did not finish (the next change, confirm or rollback
    /// undoes or finishes it first).
    pub interrupted: Option<Journal>,
}

impl Status {
    /// Whether the pending change is past its deadline (its watcher is
    /// gone: the next change, confirm or rollback reverts it).
    pub fn overdue(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| state::now() >= p.deadline)
    }
}

/// A set change: add or delete elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    /// `add element`.
    Add,
    /// `delete element`.
    Delete,
}

impl Firewall {
    /// `nft` from `PATH`, state in `state`.
    pub fn new(state: StateDir) -> Firewall {
        Firewall {
            nft: Nft::new(),
            state,
        }
    }

    /// Uses another `nft`.
    pub fn with_nft(mut self, nft: Nft) -> Firewall {
        self.nft = nft;
        self
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// Renders `file` and has `nft -c` check it against the kernel.
    pub fn check(&self, file: &ZoneFile) -> Result<Ruleset, Error> {
        let ruleset = render(file);
        self.nft.check(ruleset.text()).map_err(Error::Rejected)?;
        Ok(ruleset)
    }

    /// The live table, or `None` if it does not exist.
    pub fn live(&self) -> Result<Option<LiveTable>, Error> {
        match self.nft.list_json()? {
            Some(json) => Ok(Some(LiveTable::parse(&json)?)),
            None => Ok(None),
        }
    }

    /// What applying `ruleset` would change in the live table.
    pub fn diff(&self, ruleset: &Ruleset) -> Result<Vec<Difference>, Error> {
        Ok(match self.live()? {
            Some(live) => live.differences(ruleset.expected()),
            None => vec![Difference::TableAdded],
        })
    }

    /// What applying the zone file at `path` would change in the live
    /// table. The table is listed while the file is read and rendered, so
    /// this costs little more than `nft -j list table` alone.
    pub fn diff_file(&self, path: &std::path::Path) -> Result<Vec<Difference>, Error> {
        let (live, ruleset) = std::thread::scope(|s| {
            let live = s.spawn(|| self.live());
            let ruleset = ZoneFile::read(path).map(|f| render(&f));
            (
                live.join().expect("listing the table does not panic"),
                ruleset,
            )
        });
        let ruleset = ruleset?;
        Ok(match live? {
            Some(live) => live.differences(ruleset.expected()),
            None => vec![Difference::TableAdded],
        })
    }

    /// The text that would restore the table as it is now (or remove it if
    /// it does not exist), and its listing.
    fn capture(&self) -> Result<(String, Option<String>), Error> {
        let listing = self.nft.list_text()?;
        let text = format!("{}{}", replace_header(), listing.as_deref().unwrap_or(""));
        Ok((text, listing))
    }

    /// Loads `ruleset` in one transaction, replacing table `inet kld` and
    /// nothing else, then reads the table back and checks it holds what was
    /// meant (if not, the previous table is loaded again). The table as it
    /// was is kept for [`rollback`](Self::rollback).
    ///
    /// With `confirm`, the change is pending: it must be confirmed
    /// ([`confirm`](Self::confirm)) within that time, or
    /// [`watch`](Self::watch) (run by a process that outlives the caller,
    /// as `knft` arranges through [`apply_watched`](Self::apply_watched))
    /// or the next operation puts the previous ruleset back; and it is not
    /// loaded at boot until confirmed. Without, it is loaded at boot from
    /// now on.
    pub fn apply(&self, ruleset: &Ruleset, confirm: Option<Duration>) -> Result<Applied, Error> {
        self.apply_watched(ruleset, confirm, |_| Ok(()))
    }

    /// [`apply`](Self::apply), calling `watch` with the pending change
    /// (with `confirm`) after its journal is written and before the new
    /// ruleset is loaded: the caller starts there the process that reverts
    /// the change unless confirmed ([`watch`](Self::watch) with the token),
    /// so that there is one whenever the change is live. If `watch` fails,
    /// nothing is loaded.
    ///
    /// Under kills: the table as it was and the new ruleset are written to
    /// the state directory, then the journal (`apply.json`), before
    /// anything is loaded; the journal is marked committed once the new
    /// table is verified; the state files are then renamed into place and
    /// the journal removed. A later run that finds the journal undoes an
    /// uncommitted apply and finishes a committed one
    /// ([`recover`](Self::recover)), so the live table is always the old
    /// ruleset or the new one, `boot.nft` is never lost, and a revert only
    /// ever loads a table that was live before.
    pub fn apply_watched(
        &self,
        ruleset: &Ruleset,
        confirm: Option<Duration>,
        watch: impl FnOnce(&Pending) -> Result<(), String>,
    ) -> Result<Applied, Error> {
        let _lock = self.state.lock("knft apply")?;
        self.recover_locked()?;
        self.expire()?;
        if let Some(p) = self.current_pending()? {
            return Err(Error::Pending {
                seconds_left: p.deadline.saturating_sub(state::now()),
            });
        }
        self.nft.check(ruleset.text()).map_err(Error::Rejected)?;
        let (previous, _) = self.capture()?;
        let pending = confirm.map(|d| Pending {
            token: state::token(),
            deadline: state::now() + d.as_secs().max(1),
            boot_id: state::boot_id(),
        });
        let mut journal = Journal {
            token: pending
                .as_ref()
                .map_or_else(state::token, |p| p.token.clone()),
            boot_id: state::boot_id(),
            deadline: pending.as_ref().map(|p| p.deadline),
            committed: false,
        };
        self.state.write(STAGED_PREVIOUS, &previous)?;
        self.state.write(STAGED_APPLIED, ruleset.text())?;
        self.state.set_journal(&journal)?;
        let abandon = |this: &Self| -> Result<(), Error> {
            this.state.clear_journal()?;
            this.state.remove(STAGED_APPLIED)?;
            this.state.remove(STAGED_PREVIOUS)
        };
        if let Some(p) = &pending {
            if let Err(e) = watch(p) {
                abandon(self)?;
                return Err(Error::Watcher(e));
            }
        }
        if let Err(e) = self.nft.load(ruleset.text()) {
            abandon(self)?;
            return Err(e.into());
        }
        let differences = match self.live()? {
            Some(live) => live.differences(ruleset.expected()),
            None => vec![Difference::TableAdded],
        };
        if !differences.is_empty() {
            self.nft.load(&previous)?;
            abandon(self)?;
            return Err(Error::Unverified(differences));
        }
        journal.committed = true;
        self.state.set_journal(&journal)?;
        self.finish(&journal)?;
        Ok(Applied {
            rules: ruleset.rule_count(),
            pending,
        })
    }

    /// Puts a committed apply's state files in place (each step may have
    /// been made already by a run that was killed) and removes its journal.
    fn finish(&self, j: &Journal) -> Result<(), Error> {
        if self.state.file(STAGED_PREVIOUS).exists() {
            self.state.rename(STAGED_PREVIOUS, PREVIOUS)?;
        }
        if self.state.file(STAGED_APPLIED).exists() {
            self.state.rename(STAGED_APPLIED, APPLIED)?;
        }
        match j.deadline {
            None => {
                let applied = self.state.read(APPLIED)?.ok_or_else(|| Error::Journal {
                    journal: self.state.file("apply.json"),
                    missing: self.state.file(APPLIED),
                })?;
                self.state.write(BOOT, &applied)?;
            }
            Some(deadline) => self.state.set_pending(&Pending {
                token: j.token.clone(),
                deadline,
                boot_id: j.boot_id.clone(),
            })?,
        }
        self.state.clear_journal()
    }

    /// Undoes or finishes an apply that was interrupted (see
    /// [`apply_watched`](Self::apply_watched)), if the state directory holds
    /// one, and says what it did. Every change, confirm and rollback does
    /// this first; `knft` calls it to tell the user.
    pub fn recover(&self) -> Result<Option<Recovered>, Error> {
        let _lock = self.state.lock("knft recovering an interrupted apply")?;
        self.recover_locked()
    }

    fn recover_locked(&self) -> Result<Option<Recovered>, Error> {
        let Some(j) = self.state.journal()? else {
            // Staged files without a journal: an apply stopped before it
            // wrote the journal, so before it loaded anything.
            self.state.remove(STAGED_APPLIED)?;
            self.state.remove(STAGED_PREVIOUS)?;
            return Ok(None);
        };
        if j.committed {
            self.finish(&j)?;
            return Ok(Some(Recovered::Finished { token: j.token }));
        }
        if j.boot_id == state::boot_id() {
            let previous = self
                .state
                .read(STAGED_PREVIOUS)?
                .ok_or_else(|| Error::Journal {
                    journal: self.state.file("apply.json"),
                    missing: self.state.file(STAGED_PREVIOUS),
                })?;
            let saved = previous
                .strip_prefix(&replace_header())
                .unwrap_or(&previous);
            let live = self.nft.list_text()?.unwrap_or_default();
            if comparable(&live) != comparable(saved) {
                self.load_exactly(&previous)?;
            }
        }
        // In another boot the live table came from boot.nft, which an
        // uncommitted apply never touched.
        self.state.clear_journal()?;
        self.state.remove(STAGED_APPLIED)?;
        self.state.remove(STAGED_PREVIOUS)?;
        Ok(Some(Recovered::Undone { token: j.token }))
    }

    /// What the state directory says, changing nothing (no lock, no
    /// revert): for a read-only command.
    pub fn status(&self) -> Result<Status, Error> {
        let boot = state::boot_id();
        Ok(Status {
            pending: self.state.pending()?.filter(|p| p.boot_id == boot),
            interrupted: self.state.journal()?,
        })
    }

    /// The change awaiting confirmation in this boot, if any (one from an
    /// earlier boot is forgotten: that boot's end undid it).
    fn current_pending(&self) -> Result<Option<Pending>, Error> {
        match self.state.pending()? {
            Some(p) if p.boot_id == state::boot_id() => Ok(Some(p)),
            Some(_) => {
                self.state.clear_pending()?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Reverts a pending change whose deadline has passed (lock held).
    fn expire(&self) -> Result<bool, Error> {
        match self.current_pending()? {
            Some(p) if state::now() >= p.deadline => {
                self.restore_previous()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The change awaiting confirmation, if any (an interrupted apply is
    /// recovered and an overdue change reverted first).
    pub fn pending(&self) -> Result<Option<Pending>, Error> {
        let _lock = self.state.lock("knft pending")?;
        self.recover_locked()?;
        self.expire()?;
        self.current_pending()
    }

    /// Keeps the pending change: it stays, and loads at boot from now on.
    pub fn confirm(&self) -> Result<(), Error> {
        let _lock = self.state.lock("knft confirm")?;
        if let Some(Recovered::Undone { .. }) = self.recover_locked()? {
            return Err(Error::NothingPending);
        }
        if self.expire()? {
            return Err(Error::NothingPending);
        }
        if self.current_pending()?.is_none() {
            return Err(Error::NothingPending);
        }
        let applied = self.state.read(APPLIED)?.ok_or(Error::NothingPending)?;
        self.state.write(BOOT, &applied)?;
        self.state.clear_pending()
    }

    /// The text [`rollback`](Self::rollback) would load, if there is one.
    pub fn previous(&self) -> Result<Option<String>, Error> {
        self.state.read(PREVIOUS)
    }

    /// Puts back the table as it was before the last apply (exactly: the
    /// restored table lists as the saved one), or removes it if there was
    /// none. The restored ruleset is also what loads at boot. An apply that
    /// was interrupted before it took effect is the last apply: undoing it
    /// is the whole rollback.
    pub fn rollback(&self) -> Result<(), Error> {
        let _lock = self.state.lock("knft rollback")?;
        if let Some(Recovered::Undone { .. }) = self.recover_locked()? {
            return Ok(());
        }
        self.restore_previous()
    }

    /// Loads a saved table and checks it lists as saved.
    fn load_exactly(&self, previous: &str) -> Result<(), Error> {
        self.nft.load(previous)?;
        let saved = previous.strip_prefix(&replace_header()).unwrap_or(previous);
        let now = self.nft.list_text()?.unwrap_or_default();
        if comparable(&now) != comparable(saved) {
            return Err(Error::RestoreMismatch);
        }
        Ok(())
    }

    /// Loads `previous.nft` and makes it the boot ruleset. Every step can
    /// be repeated: `previous.nft` goes last, so a run killed part-way is
    /// finished by the next revert or rollback.
    fn restore_previous(&self) -> Result<(), Error> {
        let previous = self.state.read(PREVIOUS)?.ok_or(Error::NoPrevious)?;
        self.load_exactly(&previous)?;
        let saved = previous
            .strip_prefix(&replace_header())
            .unwrap_or(&previous);
        if saved.is_empty() {
            self.state.remove(BOOT)?;
        } else {
            self.state.write(BOOT, &previous)?;
        }
        self.state.clear_pending()?;
        self.state.remove(APPLIED)?;
        self.state.remove(PREVIOUS)
    }

    /// Waits for `pending`'s deadline, then reverts the change if it is
    /// still pending (not confirmed, rolled back or replaced meanwhile).
    pub fn revert_when_due(&self, pending: &Pending) -> Result<Revert, Error> {
        self.watch(&pending.token)
    }

    /// The watcher of the apply with this token: waits for its deadline
    /// (from the apply's journal, or its pending record once written), then
    /// reverts the change unless it was confirmed, rolled back or replaced
    /// meanwhile; an apply that was interrupted is undone or finished
    /// first ([`recover`](Self::recover)).
    pub fn watch(&self, token: &str) -> Result<Revert, Error> {
        let deadline = |this: &Self| -> Result<Option<u64>, Error> {
            if let Some(j) = this.state.journal()?.filter(|j| j.token == token) {
                return Ok(j.deadline);
            }
            Ok(this
                .state
                .pending()?
                .filter(|p| p.token == token)
                .map(|p| p.deadline))
        };
        loop {
            // Stop waiting as soon as the change is confirmed or replaced.
            let Some(due) = deadline(self)? else {
                return Ok(Revert::NotNeeded);
            };
            let now = state::now();
            if now >= due {
                break;
            }
            std::thread::sleep(Duration::from_secs((due - now).min(1)));
        }
        let _lock = self.state.lock("knft reverting an unconfirmed change")?;
        if let Some(Recovered::Undone { token: t }) = self.recover_locked()? {
            if t == token {
                return Ok(Revert::Reverted);
            }
        }
        match self.current_pending()? {
            Some(p) if p.token == token => {
                self.restore_previous()?;
                Ok(Revert::Reverted)
            }
            _ => Ok(Revert::NotNeeded),
        }
    }

    /// Adds or deletes elements of one of the zone file's named sets, live,
    /// in one nft command (all or none).
    pub fn set_elements(&self, op: SetOp, set: &str, elements: &[String]) -> Result<(), Error> {
        let live = self.live()?.ok_or(Error::NoTable)?;
        let found = live
            .set(set)
            .filter(|s| !s.name.starts_with("kld_"))
            .ok_or_else(|| Error::UnknownSet(set.to_owned()))?;
        let family = match found.kind.as_str() {
            "ipv4_addr" => crate::Family::V4,
            "ipv6_addr" => crate::Family::V6,
            _ => return Err(Error::UnknownSet(set.to_owned())),
        };
        let mut checked = Vec::new();
        for e in elements {
            let n: Network =
                e.parse()
                    .map_err(|err: crate::addr::NetworkError| Error::Element {
                        set: set.to_owned(),
                        element: e.clone(),
                        why: err.to_string(),
                    })?;
            if n.family() != family {
                return Err(Error::Element {
                    set: set.to_owned(),
                    element: e.clone(),
                    why: format!("the set holds {} addresses", family.name()),
                });
            }
            checked.push(n.to_string());
        }
        if checked.is_empty() {
            return Ok(());
        }
        let verb = match op {
            SetOp::Add => "add",
            SetOp::Delete => "delete",
        };
        let elements = format!("{{ {} }}", checked.join(", "));
        let _lock = self.state.lock("knft set")?;
        self.nft
            .command(&[verb, "element", FAMILY, TABLE, set, &elements])
            .map_err(Error::from)
    }

    /// The `nft` commands a set change runs, for `--dry-run`.
    pub fn set_command(op: SetOp, set: &str, elements: &[String]) -> String {
        let verb = match op {
            SetOp::Add => "add",
            SetOp::Delete => "delete",
        };
        format!(
            "nft {verb} element {FAMILY} {TABLE} {set} {{ {} }}",
            elements.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_does_not_count_as_a_difference() {
        let a = "table inet kld {\n\tset kld_conn4_public_1 {\n\t\ttype ipv4_addr\n\t\tflags dynamic\n\
                 \t\telements = { 192.0.2.2 ct count over 2,\n\t\t\t     192.0.2.3 ct count over 2 }\n\t}\n\
                 \tset pool {\n\t\telements = { 10.0.0.1 }\n\t}\n\
                 \tchain in_public {\n\t\tcounter packets 5 bytes 300 drop comment \"x\"\n\t}\n}\n";
        let b = "table inet kld {\n\tset kld_conn4_public_1 {\n\t\ttype ipv4_addr\n\t\tflags dynamic\n\t}\n\
                 \tset pool {\n\t\telements = { 10.0.0.1 }\n\t}\n\
                 \tchain in_public {\n\t\tcounter packets 0 bytes 0 drop comment \"x\"\n\t}\n}\n";
        assert_eq!(comparable(a), comparable(b));
        assert!(comparable(a).contains("\t\tcounter drop comment"));
        let c = b.replace("10.0.0.1", "10.0.0.2");
        assert_ne!(comparable(&c), comparable(b), "named sets still count");
    }
}
