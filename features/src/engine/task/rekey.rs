//! The re-keyed views' side of a task: what it tells the other tasks
//! (its events for keys they own, and marks of how far it has released)
//! and how it releases what they send it ([`super::shuffle::Exchange`]).

use super::shuffle::{self, Exchange, OriginState, Received, Shuffled, ShuffledRow};
use super::*;

impl Task {
    /// The exchange's watermark (re-keyed views), if any.
    pub fn exchange_watermark(&self) -> Option<i64> {
        self.exchange.as_ref().map(|x| x.watermark)
    }

    /// Where this task reads its partition of the repartition topic (None:
    /// from the beginning, or no re-keyed view).
    pub fn repartition_offset(&self) -> Option<i64> {
        self.exchange.as_ref().and_then(|x| x.next_offset)
    }

    /// This task's probed events waiting for answers.
    pub fn examples_waiting(&self) -> usize {
        self.exchange.as_ref().map_or(0, |x| x.waiting.len())
    }

    /// Probed events waiting for answers, and lookups waiting to be
    /// answered here.
    pub fn lookups_waiting(&self) -> usize {
        self.exchange
            .as_ref()
            .map_or(0, |x| x.waiting.len() + x.lookups())
    }

    /// The task has re-keyed views (it reads the repartition topic).
    pub fn exchanges(&self) -> bool {
        self.exchange.is_some()
    }

    /// The reading half finished (a bounded run); the re-keyed views may
    /// still wait for other tasks.
    pub fn upstream_finished(&self) -> bool {
        self.exchange
            .as_ref()
            .map_or(self.finished, |x| x.upstream_finished)
    }

    /// A finished bounded run goes on: live, or with records that arrived
    /// since.
    pub fn reopen(&mut self) {
        self.finished = false;
        if let Some(x) = &mut self.exchange {
            x.reopen();
        }
    }

    /// Records that the repartition topic was read up to `offset` without a
    /// message to take (one that did not decode).
    pub fn receive_skipped(&mut self, offset: i64) {
        if let Some(x) = &mut self.exchange {
            x.next_offset = Some(offset + 1);
        }
    }

    /// Takes a re-keyed event or a mark from another task (read at
    /// `offset` of the repartition topic, live).
    pub fn receive(&mut self, msg: Shuffled, offset: Option<i64>) -> Received {
        match &mut self.exchange {
            Some(x) => {
                let received = x.receive(msg, offset);
                // A finished task with news for its re-keyed views (or
                // answers for its waiting events) goes on.
                self.finished &= x.settled();
                received
            }
            // No re-keyed view here: the message is not for this spec.
            None => Received::Duplicate,
        }
    }

    /// The re-keyed views' side of a step: tell the other tasks how far
    /// this one has released, then release what every origin allows (or
    /// everything, once every origin has finished).
    pub(super) fn exchange_step(
        &mut self,
        cap: i64,
        mut probe: Option<&mut Probe>,
        out: &mut Output,
    ) {
        let Some(x) = &self.exchange else {
            return;
        };
        let state = if x.upstream_finished {
            OriginState::Finished
        } else if self.allowed().is_none() {
            OriginState::Idle
        } else {
            OriginState::Live
        };
        // A new state always goes out; a live watermark's progress only
        // when marks are due (the job paces them: each is a record to every
        // task). When they go out changes latency, never what is released.
        let changed = match self.sent {
            Some((_, sent)) if sent == state && state == OriginState::Live => {
                self.marks_due && self.sent != Some((self.watermark, state))
            }
            _ => self.sent != Some((self.watermark, state)),
        };
        if changed {
            self.sent = Some((self.watermark, state));
            for p in 0..self.cfg.partitions {
                out.shuffled.push((
                    p,
                    Shuffled::Mark {
                        origin: self.partition,
                        watermark: self.watermark,
                        state,
                    },
                ));
            }
        }
        let x = self.exchange.as_ref().expect("checked");
        if !x.finished {
            if let Some(end) = x.all_finished() {
                // The final table of the re-keyed views, whatever `quiet`
                // says.
                for (v, view) in self.cfg.views.iter().enumerate() {
                    if view.rekeyed() {
                        self.views[v].touch_all();
                    }
                }
                let quiet = std::mem::replace(&mut self.quiet, false);
                self.release_exchange(end, probe.as_deref_mut(), out);
                self.quiet = quiet;
                self.exchange.as_mut().expect("checked").finished = true;
            } else if let Some(w) = x.allowed()
                && w.min(cap) > x.watermark
            {
                self.release_exchange(w.min(cap), probe.as_deref_mut(), out);
            }
        }
        let x = self.exchange.as_mut().expect("checked");
        // Answers to the tasks whose probed events asked.
        out.shuffled
            .extend(x.answers.drain(..).map(|(to, a)| (to, Shuffled::Answer(a))));
        // This task's probed events whose answers are all in.
        let ready = x.ready();
        match probe {
            Some(probe) => {
                for mut w in ready {
                    probe
                        .rows
                        .push(&self.cfg, &w.row, probe.keep_columns, &mut w.values);
                }
            }
            None if !ready.is_empty() => {
                // Only a probe asks: one that is gone (a restart without
                // the models that asked) has no reader for them.
                tracing::warn!(
                    events = ready.len(),
                    task = self.partition,
                    "probed events restored from a checkpoint have no reader any more (the models that read re-keyed views are gone); they are not learned from"
                );
            }
            None => {}
        }
        self.finished = x.settled() && x.upstream_finished;
    }

    /// Applies the re-keyed events up to `w` in (time, origin, source,
    /// offset) order, answering the probe's queries of re-keyed views on
    /// the way, and emits the re-keyed views' changed keys as of `w`.
    pub(super) fn release_exchange(&mut self, w: i64, probe: Option<&mut Probe>, out: &mut Output) {
        let x = self.exchange.as_mut().expect("exchanging");
        let released = x.release(w);
        let w = x.watermark;
        let lookups = x.lookups() > 0;
        let mut no_queries = Vec::new();
        let mut no_answers = Vec::new();
        let (queries, answers) = match probe {
            Some(p) => (&mut p.exchange_queries, &mut p.answers),
            None => (&mut no_queries, &mut no_answers),
        };
        if queries.is_empty() && !lookups {
            for row in released {
                self.views[row.view as usize].apply(&row.key, row.ts, row.inputs);
            }
        } else {
            // One timestamp at a time: reads at `t` see every event before
            // it and none at or after it.
            let mut rows = released.into_iter().peekable();
            while let Some(first) = rows.next() {
                let ts = first.ts;
                answer_queries(&mut self.views, queries, answers, ts - 1);
                read_lookups(&mut self.views, self.exchange.as_mut(), ts);
                self.views[first.view as usize].apply(&first.key, ts, first.inputs);
                while let Some(row) = rows.next_if(|r| r.ts == ts) {
                    self.views[row.view as usize].apply(&row.key, ts, row.inputs);
                }
            }
            answer_queries(&mut self.views, queries, answers, w);
            read_lookups(&mut self.views, self.exchange.as_mut(), w);
        }
        self.emit(w, true, out);
    }

    /// Sends a re-keyed view's event to the task owning its new key (the
    /// last input), or rejects it if the key is null.
    pub(super) fn shuffle(&self, v: usize, row: &Row, mut inputs: Box<[Scalar]>, out: &mut Output) {
        let n = inputs.len() - 1;
        let key = std::mem::take(&mut inputs[n]);
        if key.is_null() {
            out.rejected.push(Rejected {
                row: row.clone(),
                reason: format!(
                    "view {}: its key `{}` is null, so the event has no key to be counted under",
                    self.cfg.views[v].plan.name, self.cfg.views[v].plan.key
                ),
            });
            return;
        }
        let mut inputs = inputs.into_vec();
        inputs.truncate(n);
        out.shuffled.push((
            shuffle::owner(&key, self.cfg.partitions),
            Shuffled::Row(ShuffledRow {
                view: v as u32,
                origin: self.partition,
                ts: row.ts,
                source: row.source as u32,
                offset: row.offset,
                key,
                inputs: inputs.into_boxed_slice(),
            }),
        ));
    }
}

/// Answers the exchange's lookups at or before `t` from the views' state
/// (every re-keyed event before `t` applied, none at or after it).
fn read_lookups(views: &mut [ViewState], x: Option<&mut Exchange>, t: i64) {
    if let Some(x) = x {
        x.answer_lookups(t, &mut |l| views[l.view as usize].probe(&l.key, l.ts));
    }
}
