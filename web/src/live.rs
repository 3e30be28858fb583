//! The live event stream of one workspace: a WebSocket to the hub that resumes from the last sequence
//! number after a drop (exponential backoff), answers to `stream.resync`, and keeps itself alive.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use domain::event::WorkspaceEvent;
use domain::ids::{BlockId, WorkspaceId};
use domain::stream::{
    CLOSE_ACCESS_REVOKED, CLOSE_TOO_MANY_STREAMS, ClientMessage, ControlMessage, PresentPerson,
    SeqStep, ServerMessage, live_is_gap, next_seq_step,
};
use gloo_timers::callback::{Interval, Timeout};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{CloseEvent, MessageEvent, WebSocket};
use yew::Callback;

use crate::api;

#[derive(Debug, Clone, PartialEq)]
pub enum LiveStatus {
    Connecting,
    Live,
    /// Waiting `delay_ms` before attempt number `attempt`.
    Reconnecting {
        attempt: u32,
        delay_ms: u32,
    },
    /// The stream will not come back by itself (access revoked).
    Offline(String),
}

impl LiveStatus {
    pub fn state(&self) -> &'static str {
        match self {
            LiveStatus::Connecting => "connecting",
            LiveStatus::Live => "live",
            LiveStatus::Reconnecting { .. } => "reconnecting",
            LiveStatus::Offline(_) => "offline",
        }
    }
}

/// What the stream hands to the page.
#[derive(Clone)]
pub struct LiveHandlers {
    pub on_event: Callback<WorkspaceEvent>,
    /// The hub cannot replay what we missed: reload the snapshot, then call [`Live::resume_from`].
    pub on_resync: Callback<()>,
    pub on_status: Callback<LiveStatus>,
    /// Who is on the board now (`stream.presence`).
    pub on_presence: Callback<Vec<PresentPerson>>,
}

struct Inner {
    workspace: WorkspaceId,
    since: i64,
    attempt: u32,
    stopped: bool,
    /// Bumped by every new socket, so callbacks of an old one are ignored.
    generation: u32,
    socket: Option<WebSocket>,
    closures: Vec<Closure<dyn FnMut(web_sys::Event)>>,
    retry: Option<Timeout>,
    /// The block this tab has open, told to the hub now and again after every reconnect.
    presence: Option<BlockId>,
    keepalive: Option<Interval>,
    handlers: LiveHandlers,
}

/// One open stream. Dropping it closes the socket and stops reconnecting.
pub struct Live {
    inner: Rc<RefCell<Inner>>,
}

const MAX_BACKOFF_MS: f64 = 15_000.0;

impl Live {
    pub fn start(workspace: WorkspaceId, since: i64, handlers: LiveHandlers) -> Live {
        let inner = Rc::new(RefCell::new(Inner {
            workspace,
            since,
            attempt: 0,
            stopped: false,
            generation: 0,
            socket: None,
            closures: Vec::new(),
            retry: None,
            presence: None,
            keepalive: None,
            handlers,
        }));
        connect(&inner);
        Live { inner }
    }

    /// Records that the board reflects everything up to `seq` (a reconnect resumes after it).
    pub fn seen(&self, seq: i64) {
        let mut inner = self.inner.borrow_mut();
        inner.since = inner.since.max(seq);
    }

    /// Reconnects from a fresh snapshot's `seq` (after a resync).
    pub fn resume_from(&self, seq: i64) {
        {
            let mut inner = self.inner.borrow_mut();
            inner.since = seq;
            inner.attempt = 0;
            close_socket(&mut inner);
        }
        connect(&self.inner);
    }

    /// Tells the others on the board which block this tab has open (`None`: none).
    pub fn set_presence(&self, block: Option<BlockId>) {
        let mut inner = self.inner.borrow_mut();
        if inner.presence == block {
            return;
        }
        inner.presence = block;
        send_presence(&inner);
    }

    /// Closes the socket as a network drop would; the stream reconnects by itself. (Used by the browser
    /// tests through `window.__catFactory.dropLiveSocket()`.)
    pub fn drop_socket(&self) {
        if let Some(socket) = &self.inner.borrow().socket {
            let _ = socket.close();
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let mut inner = self.inner.borrow_mut();
        inner.stopped = true;
        inner.retry = None;
        close_socket(&mut inner);
    }
}

fn close_socket(inner: &mut Inner) {
    inner.generation += 1;
    inner.keepalive = None;
    if let Some(socket) = inner.socket.take() {
        socket.set_onmessage(None);
        socket.set_onclose(None);
        socket.set_onopen(None);
        let _ = socket.close();
    }
    inner.closures.clear();
}

fn connect(shared: &Rc<RefCell<Inner>>) {
    let weak = Rc::downgrade(shared);
    let (workspace, generation, on_status) = {
        let inner = shared.borrow();
        (
            inner.workspace.clone(),
            inner.generation,
            inner.handlers.on_status.clone(),
        )
    };
    on_status.emit(LiveStatus::Connecting);
    wasm_bindgen_futures::spawn_local(async move {
        let ticket = api::event_ticket(&workspace).await;
        let Some(shared) = weak.upgrade() else {
            return;
        };
        if shared.borrow().stopped || shared.borrow().generation != generation {
            return;
        }
        match ticket {
            Ok(ticket) => open_socket(&shared, &ticket.ticket),
            Err(failure) if failure.status == 404 || failure.status == 403 => {
                let handlers = shared.borrow().handlers.clone();
                // A missing route means this server has no hub; a missing workspace means no access.
                handlers
                    .on_status
                    .emit(LiveStatus::Offline(failure.message));
                schedule_reconnect(&shared, false);
            }
            Err(_) => schedule_reconnect(&shared, true),
        }
    });
}

fn socket_url(workspace: &WorkspaceId, ticket: &str, since: i64) -> Option<String> {
    let location = web_sys::window()?.location();
    Some(api::api_origin().socket_url(
        &location.protocol().ok()?,
        &location.host().ok()?,
        &format!(
            "/workspaces/{workspace}/events?ticket={}&since={since}&clientId={}",
            js_sys::encode_uri_component(ticket),
            js_sys::encode_uri_component(&api::client_id()),
        ),
    ))
}

fn open_socket(shared: &Rc<RefCell<Inner>>, ticket: &str) {
    let mut inner = shared.borrow_mut();
    close_socket(&mut inner);
    let generation = inner.generation;
    let Some(url) = socket_url(&inner.workspace, ticket, inner.since) else {
        return;
    };
    let socket = match WebSocket::new(&url) {
        Ok(socket) => socket,
        Err(_) => {
            drop(inner);
            schedule_reconnect(shared, true);
            return;
        }
    };
    let weak = Rc::downgrade(shared);
    let on_message = Closure::<dyn FnMut(web_sys::Event)>::new({
        let weak = weak.clone();
        move |event: web_sys::Event| {
            let Some(text) = event
                .dyn_ref::<MessageEvent>()
                .and_then(|message| message.data().as_string())
            else {
                return;
            };
            handle_frame(&weak, generation, &text);
        }
    });
    let on_close = Closure::<dyn FnMut(web_sys::Event)>::new({
        let weak = weak.clone();
        move |event: web_sys::Event| {
            let Some(shared) = weak.upgrade() else {
                return;
            };
            if shared.borrow().generation != generation || shared.borrow().stopped {
                return;
            }
            let code = event.dyn_ref::<CloseEvent>().map(CloseEvent::code);
            if code == Some(CLOSE_ACCESS_REVOKED) {
                let handlers = shared.borrow().handlers.clone();
                handlers.on_status.emit(LiveStatus::Offline(
                    "You no longer have access to this workspace.".into(),
                ));
                return;
            }
            if code == Some(CLOSE_TOO_MANY_STREAMS) {
                // Reconnecting would only close another tab's stream or this one again.
                let handlers = shared.borrow().handlers.clone();
                handlers.on_status.emit(LiveStatus::Offline(
                    "This workspace is open in too many tabs; close some and reload.".into(),
                ));
                return;
            }
            // Anything else (a drop, a restart, 4429 for too many messages) reconnects with backoff.
            schedule_reconnect(&shared, true);
        }
    });
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    inner.closures = vec![on_message, on_close];
    // Idle connections through proxies get cut; a ping every 25 s keeps this one open.
    let keepalive_socket = socket.clone();
    inner.keepalive = Some(Interval::new(25_000, move || {
        let _ = keepalive_socket.send_with_str("ping");
    }));
    inner.socket = Some(socket);
}

fn handle_frame(weak: &Weak<RefCell<Inner>>, generation: u32, text: &str) {
    let Some(shared) = weak.upgrade() else {
        return;
    };
    if shared.borrow().generation != generation || text == "pong" {
        return;
    }
    let Ok(message) = serde_json::from_str::<ServerMessage>(text) else {
        let since = shared.borrow().since;
        if domain::stream::unreadable_frame_needs_resync(text, since) {
            web_sys::console::warn_1(
                &format!("live: an event this board cannot read arrived after seq {since}; reloading the board").into(),
            );
            resync(&shared);
        }
        return;
    };
    // Read once and released: a borrow held across the match below would collide with the
    // `borrow_mut` of its arms (a RefCell panic).
    let (handlers, since) = {
        let inner = shared.borrow();
        (inner.handlers.clone(), inner.since)
    };
    match message {
        ServerMessage::Event(event) => {
            match next_seq_step(since, event.seq) {
                SeqStep::Apply => {
                    shared.borrow_mut().since = event.seq;
                    handlers.on_event.emit(*event);
                }
                SeqStep::AlreadySeen => {}
                // Never jump past a missing seq: reconnect from the last one applied, and the hub
                // replays what is missing (or says resync).
                SeqStep::Gap => schedule_reconnect(&shared, false),
            }
        }
        ServerMessage::Control(ControlMessage::Echo { seq }) => {
            // This tab's own write: it is applied already, only the seq moves on.
            match next_seq_step(since, seq) {
                SeqStep::Apply => shared.borrow_mut().since = seq,
                SeqStep::AlreadySeen => {}
                SeqStep::Gap => schedule_reconnect(&shared, false),
            }
        }
        ServerMessage::Control(ControlMessage::Live { seq }) if live_is_gap(since, seq) => {
            schedule_reconnect(&shared, false);
        }
        ServerMessage::Control(ControlMessage::Live { seq }) => {
            {
                let mut inner = shared.borrow_mut();
                inner.attempt = 0;
                inner.since = inner.since.max(seq);
                // A new socket starts as "looking at the board": say again what is open.
                if inner.presence.is_some() {
                    send_presence(&inner);
                }
            }
            handlers.on_status.emit(LiveStatus::Live);
        }
        ServerMessage::Control(ControlMessage::Resync { .. }) => resync(&shared),
        ServerMessage::Control(ControlMessage::Presence { people }) => {
            handlers.on_presence.emit(people);
        }
        ServerMessage::Control(ControlMessage::Error { .. } | ControlMessage::Pong) => {}
    }
}

/// Drops the socket and asks the page for a fresh snapshot (it reconnects from that snapshot's seq).
fn resync(shared: &Rc<RefCell<Inner>>) {
    let handlers = {
        let mut inner = shared.borrow_mut();
        close_socket(&mut inner);
        inner.handlers.clone()
    };
    handlers.on_status.emit(LiveStatus::Connecting);
    handlers.on_resync.emit(());
}

fn schedule_reconnect(shared: &Rc<RefCell<Inner>>, announce: bool) {
    let (attempt, delay, on_status) = {
        let mut inner = shared.borrow_mut();
        if inner.stopped {
            return;
        }
        close_socket(&mut inner);
        inner.attempt += 1;
        let base = (250.0 * 2f64.powi(inner.attempt as i32 - 1)).min(MAX_BACKOFF_MS);
        // Jitter spreads the reconnects of many tabs after a server restart.
        let delay = base * (0.75 + js_sys::Math::random() * 0.5);
        (
            inner.attempt,
            delay as u32,
            inner.handlers.on_status.clone(),
        )
    };
    if announce {
        on_status.emit(LiveStatus::Reconnecting {
            attempt,
            delay_ms: delay,
        });
    }
    let weak = Rc::downgrade(shared);
    let timer = Timeout::new(delay, move || {
        if let Some(shared) = weak.upgrade() {
            shared.borrow_mut().retry = None;
            connect(&shared);
        }
    });
    shared.borrow_mut().retry = Some(timer);
}

fn send_presence(inner: &Inner) {
    let Some(socket) = &inner.socket else {
        return;
    };
    if socket.ready_state() != WebSocket::OPEN {
        return;
    }
    let frame = ClientMessage::Presence {
        block_id: inner.presence.clone(),
    };
    if let Ok(text) = serde_json::to_string(&frame) {
        let _ = socket.send_with_str(&text);
    }
}
