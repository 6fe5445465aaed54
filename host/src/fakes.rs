//! Stand-ins for services in unit tests: an actor that keeps every message it is sent and
//! answers each from a closure, so one service can be started with fake peers and its messages
//! out checked (actix test style). Compiled for tests only.

use std::sync::{Arc, Mutex};

use actix::prelude::*;

/// What a [`Fake`] was sent, in order.
pub struct Seen<M>(Arc<Mutex<Vec<M>>>);

impl<M> Clone for Seen<M> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<M> Seen<M> {
    /// Everything sent so far (and forgets it).
    pub fn take(&self) -> Vec<M> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// How many messages arrived so far.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// How a [`Fake`] answers a message.
type Answer<M> = Box<dyn FnMut(&M) -> <M as Message>::Result>;

/// An actor that records messages of type `M` and answers them with `answer`.
pub struct Fake<M: Message> {
    seen: Seen<M>,
    answer: Answer<M>,
}

impl<M: Message + 'static> Actor for Fake<M> {
    type Context = Context<Self>;
}

impl<M: Message + 'static> Handler<M> for Fake<M> {
    type Result = MessageResult<M>;

    fn handle(&mut self, msg: M, _ctx: &mut Self::Context) -> MessageResult<M> {
        let answer = (self.answer)(&msg);
        self.seen.0.lock().unwrap().push(msg);
        MessageResult(answer)
    }
}

/// Starts a fake that answers every `M` with `answer`; returns where to send and what it saw.
pub fn fake<M>(answer: impl FnMut(&M) -> M::Result + 'static) -> (Recipient<M>, Seen<M>)
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    let seen = Seen(Arc::default());
    let addr = Fake { seen: seen.clone(), answer: Box::new(answer) }.start();
    (addr.recipient(), seen)
}

/// A fake for messages answered with `()`.
pub fn sink<M>() -> (Recipient<M>, Seen<M>)
where
    M: Message<Result = ()> + Send + 'static,
{
    fake(|_| ())
}
