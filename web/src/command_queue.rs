//! The board's command queue: every part of the page (canvas, toolbar, panel, keyboard) hands its
//! [`Command`] over by value, and the queue runs commands one after another in a microtask — after the
//! event handler that sent them has returned and released whatever it borrowed.
//!
//! Why a microtask: a DOM call inside a handler can fire other events synchronously (focusing the
//! canvas blurs a text field, whose change handler saves). Such a nested handler must not touch the
//! board its outer handler still holds. Running every command from an empty JavaScript stack makes
//! that impossible for all handlers at once, instead of being avoided call site by call site. A
//! microtask runs before the browser paints, so nothing a person can see is delayed.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use yew::Callback;

use crate::crash;
use crate::model::commands::Command;

/// Runs one command.
type Runner = Rc<dyn Fn(Command)>;

#[derive(Clone)]
pub struct CommandQueue {
    inner: Rc<Inner>,
}

struct Inner {
    pending: RefCell<VecDeque<Command>>,
    scheduled: Cell<bool>,
    /// Runs one command; set once the page has what it needs (commands wait until then).
    runner: RefCell<Option<Runner>>,
}

impl PartialEq for CommandQueue {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Default for CommandQueue {
    fn default() -> Self {
        CommandQueue {
            inner: Rc::new(Inner {
                pending: RefCell::new(VecDeque::new()),
                scheduled: Cell::new(false),
                runner: RefCell::new(None),
            }),
        }
    }
}

impl CommandQueue {
    /// Sets what runs each command (the page's current operations).
    pub fn set_runner(&self, runner: impl Fn(Command) + 'static) {
        *self.inner.runner.borrow_mut() = Some(Rc::new(runner));
        self.schedule();
    }

    /// Queues a command; it runs after the current event handler has returned.
    pub fn send(&self, command: Command) {
        self.inner.pending.borrow_mut().push_back(command);
        self.schedule();
    }

    /// A Yew callback that queues what it is given.
    pub fn callback<T: 'static>(&self, make: impl Fn(T) -> Command + 'static) -> Callback<T> {
        let queue = self.clone();
        Callback::from(move |value: T| queue.send(make(value)))
    }

    fn schedule(&self) {
        if self.inner.scheduled.replace(true) {
            return;
        }
        let queue = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            queue.inner.scheduled.set(false);
            queue.drain();
        });
    }

    fn drain(&self) {
        let Some(runner) = self.inner.runner.borrow().clone() else {
            return;
        };
        // One at a time, holding no borrow of the queue while a command runs (it may queue more).
        loop {
            let next = self.inner.pending.borrow_mut().pop_front();
            let Some(command) = next else {
                break;
            };
            let before = crash::doing(command.name());
            runner(command);
            crash::doing(before);
        }
    }
}
