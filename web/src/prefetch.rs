//! The board's snapshot, requested as soon as the page knows it opens a board.
//!
//! Opening `/w/{id}` with a stored session used to ask the server one thing after another: the config,
//! who the person is (`/auth/me`), and only once the app had rendered the board page, the snapshot —
//! the largest answer of the load, and its parse. The snapshot does not depend on `/auth/me`'s answer
//! (the same session token authorizes both), so `main` starts it right after the config, and the
//! request, its parse and `/auth/me` overlap.
//!
//! A prefetch is taken once, by the first board page that mounts (whatever its workspace), so a later
//! visit never starts from an old snapshot. The live stream resumes from the snapshot's `seq`, so the
//! events between the prefetch and the page's mount are replayed. A prefetch that failed (a stale
//! token, a network blip) is asked again by the page, so the page's errors are its own.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use domain::api::board::BoardSnapshot;
use domain::ids::WorkspaceId;

use crate::api::{self, ApiFailure};

type Answer = Result<BoardSnapshot, ApiFailure>;

#[derive(Default)]
struct Slot {
    answer: Option<Answer>,
    waiting: Vec<Waker>,
}

thread_local! {
    static PREFETCH: RefCell<Option<(WorkspaceId, Rc<RefCell<Slot>>)>> = const { RefCell::new(None) };
}

/// Starts loading `workspace`'s snapshot now, for the board page to take when it mounts.
pub fn start(workspace: WorkspaceId) {
    let slot = Rc::new(RefCell::new(Slot::default()));
    PREFETCH.with(|prefetch| *prefetch.borrow_mut() = Some((workspace.clone(), slot.clone())));
    wasm_bindgen_futures::spawn_local(async move {
        let answer = api::board(&workspace).await;
        let waiting = {
            let mut slot = slot.borrow_mut();
            slot.answer = Some(answer);
            std::mem::take(&mut slot.waiting)
        };
        for waker in waiting {
            waker.wake();
        }
    });
}

/// `workspace`'s snapshot: the prefetched one when the page started one for it, else a fresh request.
pub async fn board(workspace: &WorkspaceId) -> Answer {
    let prefetched = PREFETCH.with(|prefetch| match prefetch.borrow_mut().take() {
        Some((id, slot)) if &id == workspace => Some(slot),
        _ => None,
    });
    if let Some(slot) = prefetched
        && let Ok(snapshot) = (Prefetched { slot }).await
    {
        return Ok(snapshot);
    }
    api::board(workspace).await
}

/// Waits for a prefetch's answer.
struct Prefetched {
    slot: Rc<RefCell<Slot>>,
}

impl Future for Prefetched {
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Answer> {
        let mut slot = self.slot.borrow_mut();
        match slot.answer.take() {
            Some(answer) => Poll::Ready(answer),
            None => {
                slot.waiting.push(context.waker().clone());
                Poll::Pending
            }
        }
    }
}
