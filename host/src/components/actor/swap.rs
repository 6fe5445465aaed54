//! Replacing a running component's code in place: the new instance starts beside the old one,
//! deliveries wait in the mailbox, and only the subscriptions one of them alone had are dropped.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use super::super::budget::CpuShare;
use super::super::instance::{Instance, Trapped};
use super::super::lifecycle::{ErrorHistory, State};
use super::super::log::Level;
use super::{ComponentActor, Swap};
use crate::pubsub::Unsubscribe;
use crate::upstream::UnsubscribeUpstream;

/// The bus and upstream filters an instance subscribed to.
#[derive(Debug, Default)]
pub(super) struct Filters {
    bus: BTreeSet<String>,
    upstream: BTreeSet<String>,
}

impl Filters {
    pub(super) fn of(instance: &mut Instance) -> Self {
        let state = instance.state();
        Self { bus: state.subscriptions.clone(), upstream: state.iotcore_subscriptions.clone() }
    }
}

impl ComponentActor {
    /// Initialises `msg`'s code in a new instance and, if that works, makes it the instance.
    ///
    /// Runs as an atomic response, so deliveries arriving meanwhile wait in the mailbox and go
    /// to whichever instance is current afterwards, in order. Both instances subscribe under
    /// the component's name, so the bus keeps delivering throughout; filters only one of them
    /// uses are dropped afterwards.
    pub(super) fn swap(&mut self, msg: Swap, ctx: &Context<Self>) -> AtomicResponse<Self, Result<(), String>> {
        self.spec.kill.swap_started();
        if self.spec.kill.stopping() {
            return AtomicResponse::new(Box::pin(fut::ready(Err("the component is stopping".to_owned()))));
        }
        let engine = self.engine.clone();
        let pre = msg.pre.clone();
        let budget = msg.limits.init_budget;
        let generation = self.next_generation();
        let setup =
            self.setup_with(ctx, Arc::clone(&msg.access), Arc::clone(&msg.configs), msg.limits.clone(), generation);
        let started = async move {
            let deadline = Instant::now() + budget;
            let mut instance =
                Instance::new(&engine, &pre, setup, budget).await.map_err(|t| (t, Filters::default()))?;
            let outcome = match instance.init(deadline.saturating_duration_since(Instant::now())).await {
                Ok(Ok(())) => return Ok(instance),
                Ok(Err(reason)) => Trapped(format!("init returned an error: {reason}")),
                Err(trapped) => trapped,
            };
            Err((outcome, Filters::of(&mut instance)))
        };
        AtomicResponse::new(Box::pin(started.into_actor(self).map(move |result, act, ctx| {
            let old_filters = act.instance.as_mut().map(Filters::of).unwrap_or_default();
            match result {
                Ok(mut instance) => {
                    instance.take_held();
                    let new_filters = Filters::of(&mut instance);
                    act.unsubscribe(&old_filters, &new_filters);
                    for (_, handle) in act.timers.drain() {
                        ctx.cancel_future(handle);
                    }
                    act.pending_ticks.clear();
                    act.generation = generation;
                    act.instance = Some(instance);
                    act.errors = ErrorHistory::default();
                    act.spec.version = msg.version;
                    act.spec.pre = msg.pre;
                    act.spec.access = msg.access;
                    act.spec.configs = msg.configs;
                    act.cpu = CpuShare::new(msg.limits.cpus, Instant::now());
                    act.spec.limits = msg.limits;
                    if let Some(inbox) = &act.inbox {
                        inbox.do_send(super::super::inbox::SetBounds(act.bounds()));
                    }
                    act.running_since = None;
                    act.set_state(State::Running, None);
                    Ok(())
                }
                Err((Trapped(reason), new_filters)) => {
                    act.unsubscribe(&new_filters, &old_filters);
                    let note = format!("version {} failed to start, the running one stays: {reason}", msg.version);
                    act.spec.log.line(Level::Error, "lifecycle", &note);
                    Err(reason)
                }
            }
        })))
    }

    /// Drops the subscriptions in `from` that `keep` does not have.
    fn unsubscribe(&self, from: &Filters, keep: &Filters) {
        let name = &self.spec.name;
        for filter in from.bus.difference(&keep.bus) {
            self.services.bus.unsubscribe.do_send(Unsubscribe { subscriber: name.clone(), filter: filter.clone() });
        }
        for filter in from.upstream.difference(&keep.upstream) {
            let unsubscribe = UnsubscribeUpstream { subscriber: name.clone(), filter: Some(filter.clone()) };
            self.services.upstream.unsubscribe.do_send(unsubscribe);
        }
    }
}
