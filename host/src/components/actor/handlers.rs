//! The component actor's message handlers: each hands its message to the actor's own method.

use actix::prelude::*;

use super::*;

impl Actor for ComponentActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.start_instance(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.unsubscribe_everything();
    }
}

impl Handler<PubsubMessage> for ComponentActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: PubsubMessage, _ctx: &mut Self::Context) -> Self::Result {
        if self.undelivered() {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        }
        let budget = self.spec.limits.call_budget;
        let parent = msg.span.clone();
        self.with_instance("on-message", &parent, move |mut instance| async move {
            let result = instance.on_message(budget, &msg.topic, &msg.payload).await;
            (instance, result)
        })
    }
}

impl Handler<UpstreamMessage> for ComponentActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: UpstreamMessage, _ctx: &mut Self::Context) -> Self::Result {
        if self.undelivered() {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        }
        let budget = self.spec.limits.call_budget;
        self.with_instance("on-iotcore-message", &tracing::Span::current(), move |mut instance| async move {
            let result = instance.on_iotcore_message(budget, &msg.topic, &msg.payload).await;
            (instance, result)
        })
    }
}

impl Handler<TimerControl> for ComponentActor {
    type Result = ();

    fn handle(&mut self, msg: TimerControl, ctx: &mut Self::Context) {
        self.timer_control(msg, ctx);
    }
}

impl Handler<FireTimer> for ComponentActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: FireTimer, _ctx: &mut Self::Context) -> Self::Result {
        if msg.generation != self.generation {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        }
        self.pending_ticks.remove(&msg.id);
        let budget = self.spec.limits.call_budget;
        self.with_instance("on-timer", &tracing::Span::current(), move |mut instance| async move {
            let result = instance.on_timer(budget, msg.id).await;
            (instance, result)
        })
    }
}

impl Handler<Reconfigure> for ComponentActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Reconfigure, _ctx: &mut Self::Context) -> Self::Result {
        self.spec.configs = Arc::clone(&msg.configs);
        self.spec.access = Arc::clone(&msg.access);
        let budget = self.spec.limits.call_budget;
        self.with_instance("on-configuration-update", &tracing::Span::current(), move |mut instance| async move {
            let state = instance.state();
            let changed = changed_subscriptions(&state.configs, &msg.configs, &state.config_subscriptions);
            state.configs = msg.configs;
            state.access = msg.access;
            for (component, key_path) in changed {
                if let Err(trap) = instance.on_configuration_update(budget, &component, &key_path).await {
                    return (instance, Err(trap));
                }
            }
            (instance, Ok(()))
        })
    }
}

impl Handler<Restart> for ComponentActor {
    type Result = ();

    fn handle(&mut self, _msg: Restart, ctx: &mut Self::Context) {
        if self.state == State::Errored && !self.spec.kill.stopping() {
            self.restarts += 1;
            self.start_instance(ctx);
        }
    }
}

impl Handler<Swap> for ComponentActor {
    type Result = AtomicResponse<Self, Result<(), String>>;

    fn handle(&mut self, msg: Swap, ctx: &mut Self::Context) -> Self::Result {
        self.swap(msg, ctx)
    }
}

impl Handler<RestartComponent> for ComponentActor {
    type Result = ();

    fn handle(&mut self, msg: RestartComponent, ctx: &mut Self::Context) {
        if self.spec.kill.stopping() {
            let _ = msg.done.send(Err("the component is stopping".to_owned()));
            return;
        }
        self.first_start = Some(msg.done);
        self.drop_instance(ctx);
        self.errors = ErrorHistory::default();
        self.restarts += 1;
        self.start_instance(ctx);
    }
}

impl Handler<StopComponent> for ComponentActor {
    type Result = u32;

    fn handle(&mut self, _msg: StopComponent, ctx: &mut Self::Context) -> u32 {
        self.set_state(State::Stopping, None);
        self.instance = None;
        self.set_state(State::Finished, None);
        ctx.stop();
        self.restarts
    }
}
