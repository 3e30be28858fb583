//! The board page: loads the snapshot, keeps it live, and lays out the toolbar, the canvas, the side
//! panel and the dialogs. What the page does is in `ops` ([`Ops::run`] for each [`Command`]).
//!
//! The board lives in the canvas [`Engine`] (a `RefCell`), not in a Yew reducer: a live event or an edit
//! changes one entry of a map that may hold thousands of blocks, and copying it per change would cost
//! more than the change. A counter reducer tells Yew when to re-render.
//!
//! Nothing on this page changes the board from inside an event handler: the canvas, the toolbar, the
//! panel and the keyboard hand [`Command`]s to the [`CommandQueue`], which runs them once the handler has
//! returned (see `command_queue`).

mod ops;

use std::cell::RefCell;
use std::rc::Rc;

use domain::access::WorkspaceRole;
use domain::api::runs::RunRecord;
use domain::board::Level;
use domain::event::{EventPayload, WorkspaceEvent};
use domain::ids::{BlockId, RunId, WorkspaceId};
use gloo_events::EventListener;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{Element, KeyboardEvent};
use yew::prelude::*;

use crate::api::{self, ApiFailure};
use crate::app::{Action, AppContext, navigate};
use crate::command_queue::CommandQueue;
use crate::components::canvas::{Canvas, Engine, SharedEngine};
use crate::components::finder::Finder;
use crate::components::github::GithubDialog;
use crate::components::members_dialog::MembersDialog;
use crate::components::panel::Panel;
use crate::components::slot;
use crate::live::{Live, LiveHandlers, LiveStatus};
use crate::model::Board;
use crate::model::commands::Command;
use crate::model::keys::{KeyPress, command_for_key};
use crate::model::runs::{latest_per_block, needs_fetch, store_run};
use crate::model::spend::SpendTally;
use crate::model::undo::UndoStack;
use crate::router::Route;
use ops::{ContextMenu, Ops, Refusal, WriteLanes, explain};

#[derive(Default, PartialEq)]
struct Counter(u64);

impl Reducible for Counter {
    type Action = ();
    fn reduce(self: Rc<Self>, _: ()) -> Rc<Self> {
        Rc::new(Counter(self.0 + 1))
    }
}

/// The keyboard shortcuts the `?` sheet lists.
const SHORTCUTS: [(&str, &str); 17] = [
    (
        "Double-click",
        "Add a block here (a frame, a module in a frame, a task in a module)",
    ),
    (
        "Double-click a title, F2, Enter",
        "Rename the selected block in place",
    ),
    (
        "Delete, Backspace",
        "Delete the selected block or dependency",
    ),
    (
        "E, Shift+E",
        "Select the next / previous dependency of the selected block (then Delete removes it)",
    ),
    ("Ctrl+Z", "Undo your last change"),
    ("Ctrl+Shift+Z, Ctrl+Y", "Redo what you undid"),
    (
        "Escape",
        "Leave a text field, close a dialog, clear the selection",
    ),
    ("+ / −", "Zoom in / out"),
    ("0", "Zoom to fit the board"),
    ("Arrow keys", "Pan (Shift: further)"),
    (
        "Drag a header or a task",
        "Move it, or drop it into another frame or module",
    ),
    ("Drag the dot on a block's edge", "Add a dependency"),
    (
        "Ctrl+C, Ctrl+V",
        "Copy the selection (with what is inside), paste into the selected frame or module",
    ),
    ("Ctrl+D", "Duplicate the selection"),
    ("Ctrl+K", "Find a block by its title and jump to it"),
    ("Right-click", "The menu of what you can do here"),
    ("?", "Show or hide this sheet"),
];

/// Whether an element is somewhere a person types (the board's shortcuts stay out of it).
fn is_text_field(element: &Element) -> bool {
    element
        .closest("input, textarea, select, [contenteditable=''], [contenteditable='true']")
        .ok()
        .flatten()
        .is_some()
}

#[derive(Properties, PartialEq)]
pub struct BoardPageProps {
    pub workspace_id: WorkspaceId,
}

#[function_component]
pub fn BoardPage(props: &BoardPageProps) -> Html {
    let app = use_context::<AppContext>().expect("the app context");
    let tick = use_reducer(Counter::default);
    let engine = use_state(|| None::<SharedEngine>);
    let failed = use_state(|| None::<ApiFailure>);
    let status = use_state(|| LiveStatus::Connecting);
    let live = use_mut_ref(|| None::<Live>);
    let undo = use_mut_ref(UndoStack::default);
    let lanes = use_mut_ref(|| Rc::new(WriteLanes::default()));
    let refusal = use_state(|| None::<Refusal>);
    let fresh = use_state(|| None::<BlockId>);
    let confirm = use_state(|| None::<Vec<BlockId>>);
    let shortcuts = use_state(|| false);
    let members_open = use_state(|| false);
    let github_open = use_state(|| false);
    let menu = use_state(|| None::<ContextMenu>);
    let finder = use_state(|| false);
    let panel_collapsed = use_state(|| false);
    let people = use_state(Vec::<domain::stream::PresentPerson>::new);
    let clip = use_mut_ref(|| None::<crate::model::clipboard::Clip>);
    let ops_ref = use_mut_ref(|| None::<Ops>);
    let queue = use_memo((), |_| CommandQueue::default());
    let hooks = use_mut_ref(Vec::<Closure<dyn Fn()>>::new);
    let bump = {
        let tick = tick.clone();
        Callback::from(move |_| tick.dispatch(()))
    };

    // Every command runs with the page's latest operations (set on each render below).
    {
        let (queue, ops_ref) = (queue.clone(), ops_ref.clone());
        use_effect_with((), move |_| {
            queue.set_runner(move |command| {
                let ops = ops_ref.borrow().clone();
                if let Some(ops) = ops {
                    ops.run(command);
                }
            });
        });
    }

    // Keyboard shortcuts, on the window so they work wherever the focus is (but never while typing).
    {
        let (queue, ops_ref) = (queue.clone(), ops_ref.clone());
        use_effect_with((), move |_| {
            let window = web_sys::window().expect("a window");
            // Not passive: a shortcut stops the browser's own use of its key.
            let options = gloo_events::EventListenerOptions::enable_prevent_default();
            let listener =
                EventListener::new_with_options(&window, "keydown", options, move |event| {
                    let Some(key) = event.dyn_ref::<KeyboardEvent>() else {
                        return;
                    };
                    let target = event
                        .target()
                        .and_then(|target| target.dyn_into::<Element>().ok());
                    let focused = web_sys::window()
                        .and_then(|window| window.document())
                        .and_then(|document| document.active_element());
                    let in_text_field = target.iter().chain(focused.iter()).any(is_text_field);
                    let on_button = target.as_ref().is_some_and(|target| {
                        target.closest("button, a[href]").ok().flatten().is_some()
                    });
                    if on_button && (key.key() == "Enter" || key.key() == " ") {
                        return;
                    }
                    let has_selection = ops_ref.borrow().as_ref().is_some_and(|ops| {
                        ops.engine.try_borrow().is_ok_and(|engine| {
                            engine.selected.is_some()
                                || engine.selected_edge.is_some()
                                || !engine.multi.is_empty()
                        })
                    });
                    let focused_block = target
                        .as_ref()
                        .filter(|target| target.has_attribute("data-block-id"))
                        .and_then(|target| target.get_attribute("data-block-id"))
                        .and_then(|id| BlockId::parse(&id).ok());
                    let selected = ops_ref.borrow().as_ref().and_then(|ops| {
                        ops.engine
                            .try_borrow()
                            .ok()
                            .and_then(|engine| engine.selected.clone())
                    });
                    let press = KeyPress {
                        focused_unselected_block: focused_block
                            .filter(|id| Some(id) != selected.as_ref()),
                        key: key.key(),
                        ctrl: key.ctrl_key(),
                        meta: key.meta_key(),
                        alt: key.alt_key(),
                        shift: key.shift_key(),
                        in_text_field,
                    };
                    if let Some(command) = command_for_key(&press, has_selection) {
                        if !in_text_field {
                            event.prevent_default();
                        }
                        queue.send(command);
                    }
                });
            move || drop(listener)
        });
    }

    // Load the snapshot, then open the live stream from its seq.
    {
        let (engine, failed, status, live, bump, app, hooks, people) = (
            engine.clone(),
            failed.clone(),
            status.clone(),
            live.clone(),
            bump.clone(),
            app.clone(),
            hooks.clone(),
            people.clone(),
        );
        use_effect_with(
            props.workspace_id.clone(),
            move |workspace: &WorkspaceId| {
                let workspace = workspace.clone();
                let cleanup_live = live.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let snapshot = match api::board(&workspace).await {
                        Ok(snapshot) => snapshot,
                        Err(failure) => {
                            failed.set(Some(failure));
                            return;
                        }
                    };
                    let seq = snapshot.seq;
                    let board = Board::from_snapshot(snapshot);
                    crate::perf::mark("board:mapped");
                    let shared = Rc::new(RefCell::new(Engine::new(board)));
                    crate::perf::mark("board:built");
                    shared.borrow_mut().fit_pending = true;
                    engine.set(Some(SharedEngine(shared.clone())));
                    let weak = Rc::downgrade(&shared);
                    load_runs_and_spend(weak.clone(), workspace.clone(), bump.clone());
                    let on_event = {
                        let (weak, bump, app, live, workspace) = (
                            weak.clone(),
                            bump.clone(),
                            app.clone(),
                            live.clone(),
                            workspace.clone(),
                        );
                        Callback::from(move |event: WorkspaceEvent| {
                            let Some(shared) = weak.upgrade() else {
                                return;
                            };
                            let unknown_run = match &event.payload {
                                EventPayload::Run(record)
                                    if needs_fetch(&shared.borrow().board.runs, record) =>
                                {
                                    Some(record.run_id.clone())
                                }
                                _ => None,
                            };
                            shared.borrow_mut().board.apply_event(&event);
                            if let Some(live) = live.borrow().as_ref() {
                                live.seen(event.seq);
                            }
                            if let Some(run_id) = unknown_run {
                                fetch_run(weak.clone(), workspace.clone(), run_id, bump.clone());
                            }
                            if let EventPayload::WorkspaceUpdated { workspace } = &event.payload {
                                let existing = app
                                    .workspaces
                                    .iter()
                                    .find(|view| view.workspace.id == workspace.id)
                                    .cloned();
                                if let Some(mut view) = existing {
                                    view.workspace = workspace.clone();
                                    app.dispatch(Action::WorkspaceSaved(view));
                                }
                            }
                            bump.emit(());
                        })
                    };
                    let on_resync = {
                        let (weak, bump, live, workspace) =
                            (weak.clone(), bump.clone(), live.clone(), workspace.clone());
                        Callback::from(move |_| {
                            let (weak, bump, live, workspace) =
                                (weak.clone(), bump.clone(), live.clone(), workspace.clone());
                            wasm_bindgen_futures::spawn_local(async move {
                                let Ok(snapshot) = api::board(&workspace).await else {
                                    return;
                                };
                                let Some(shared) = weak.upgrade() else {
                                    return;
                                };
                                let seq = snapshot.seq;
                                shared
                                    .borrow_mut()
                                    .replace_board(Board::from_snapshot(snapshot));
                                if let Some(live) = live.borrow().as_ref() {
                                    live.resume_from(seq);
                                }
                                load_runs_and_spend(weak.clone(), workspace.clone(), bump.clone());
                                bump.emit(());
                            });
                        })
                    };
                    let on_status = {
                        let status = status.clone();
                        Callback::from(move |next: LiveStatus| status.set(next))
                    };
                    let on_presence = {
                        let people = people.clone();
                        Callback::from(move |next| people.set(next))
                    };
                    let stream = Live::start(
                        workspace.clone(),
                        seq,
                        LiveHandlers {
                            on_event,
                            on_resync,
                            on_status,
                            on_presence,
                        },
                    );
                    *live.borrow_mut() = Some(stream);
                    // A hook for the browser tests: cut the socket the way a network drop would.
                    let drop_socket = {
                        let live = live.clone();
                        Closure::<dyn Fn()>::new(move || {
                            if let Some(live) = live.borrow().as_ref() {
                                live.drop_socket();
                            }
                        })
                    };
                    if let Some(window) = web_sys::window() {
                        let hook = js_sys::Object::new();
                        let _ = js_sys::Reflect::set(
                            &hook,
                            &"dropLiveSocket".into(),
                            drop_socket.as_ref(),
                        );
                        let _ = js_sys::Reflect::set(&window, &"__catFactory".into(), &hook);
                    }
                    hooks.borrow_mut().push(drop_socket);
                });
                move || {
                    cleanup_live.borrow_mut().take();
                }
            },
        );
    }

    // The board waits for the workspace list too: the person's role (a viewer's read-only board)
    // comes from it, and the snapshot may now arrive first (`index.html` starts it early).
    let shared = (*engine).clone().filter(|_| app.workspaces_loaded);
    let Some(shared) = shared else {
        return match &*failed {
            // A board the caller may not see answers 404, whether or not it exists.
            Some(failure) if failure.status == 404 || failure.status == 403 => {
                let back = {
                    let app = app.clone();
                    Callback::from(move |event: MouseEvent| {
                        event.prevent_default();
                        navigate(&app, Route::Home);
                    })
                };
                html! {
                    <main class="board-page loading" data-testid="board-no-access">
                        <div class="no-access">
                            <h2>{ "You don't have access to this board" }</h2>
                            <p class="muted">{ "It may have been deleted, or nobody has shared it with you yet. Ask one of its owners to add you as a member." }</p>
                            <a class="button primary" href="/" onclick={back} data-testid="back-to-workspaces">{ "Back to your workspaces" }</a>
                        </div>
                    </main>
                }
            }
            Some(failure) => html! {
                <main class="board-page loading" data-testid="board-loading">
                    <p class="form-error">{ explain(failure) }</p>
                </main>
            },
            None => html! {
                <main class="board-page loading" data-testid="board-loading">
                    <p class="muted">{ "Loading the board…" }</p>
                </main>
            },
        };
    };
    let role = app
        .workspaces
        .iter()
        .find(|view| view.workspace.id == props.workspace_id)
        .map(|view| view.role);
    let read_only = role == Some(WorkspaceRole::Viewer);
    shared.0.borrow_mut().read_only = read_only;
    let ops = Ops {
        app: app.clone(),
        engine: shared.0.clone(),
        workspace: props.workspace_id.clone(),
        bump: bump.clone(),
        undo: undo.clone(),
        lanes: lanes.borrow().clone(),
        refusal: refusal.clone(),
        fresh: fresh.clone(),
        confirm: confirm.clone(),
        shortcuts: shortcuts.clone(),
        clip: clip.clone(),
        menu: menu.clone(),
        finder: finder.clone(),
        panel_collapsed: panel_collapsed.clone(),
        read_only,
    };
    *ops_ref.borrow_mut() = Some(ops);
    let selected_for_presence = shared.0.borrow().selected.clone();

    // The others on the board see which block this tab has open.
    if let Some(live) = live.borrow().as_ref() {
        live.set_presence(selected_for_presence.clone());
    }
    let send = |command: Command| {
        let queue = queue.clone();
        Callback::from(move |_: MouseEvent| queue.send(command.clone()))
    };

    let engine_ref = shared.0.borrow();
    let selected = engine_ref.selected.clone();
    let selected_edge = engine_ref.selected_edge.clone();
    let zoom_text = format!("{:.0}%", engine_ref.view.zoom * 100.0);
    let blocks = engine_ref.board.blocks.len();
    let workspace_name = engine_ref.board.workspace.name.clone();
    let confirm_text = confirm.as_ref().and_then(|ids| {
        let blocks: Vec<_> = ids
            .iter()
            .filter_map(|id| engine_ref.board.blocks.get(id))
            .collect();
        let inside: usize = ids
            .iter()
            .map(|id| engine_ref.board.subtree(id).len().saturating_sub(1))
            .sum();
        let what = match blocks.as_slice() {
            [] => return None,
            [block] => format!("“{}”", block.title),
            many => format!("these {} blocks", many.len()),
        };
        Some(if inside == 0 {
            format!("Delete {what}?")
        } else {
            format!(
                "Delete {what} and the {inside} block{} inside?",
                if inside == 1 { "" } else { "s" }
            )
        })
    });
    let multi_count = engine_ref.multi.len();
    let minimap_shown = engine_ref.minimap_shown;
    let zoom_label = engine_ref.zoom_label.clone();
    let spend_text = engine_ref.board.spend.toolbar_text();
    let spend_title = engine_ref.board.spend.toolbar_title();
    let spend_cost = engine_ref.board.spend.workspace.0.to_string();
    let me = match &app.session {
        crate::app::Session::SignedIn(me) => Some(me.user.id.to_string()),
        _ => None,
    };
    let others = crate::model::presence::others(&people, me.as_deref(), |id| {
        engine_ref
            .board
            .blocks
            .get(id)
            .map(|block| block.title.clone())
    });
    drop(engine_ref);
    let open_markers = Rc::new(crate::model::presence::open_markers(&others));
    let can_undo = !undo.borrow().is_empty();
    let can_redo = undo.borrow().can_redo();
    let on_run = {
        let (engine, bump) = (shared.0.clone(), bump.clone());
        Callback::from(move |run: RunRecord| {
            store_run(&mut engine.borrow_mut().board.runs, run);
            bump.emit(());
        })
    };
    let on_github = {
        let (engine, bump) = (shared.0.clone(), bump.clone());
        Callback::from(move |state: domain::api::github::BlockGithub| {
            let changed = {
                let mut engine = engine.borrow_mut();
                let changed = crate::model::github::store_state(&mut engine.board.github, state);
                if changed {
                    engine.board.version += 1;
                }
                changed
            };
            if changed {
                bump.emit(());
            }
        })
    };
    let on_imported = {
        let (engine, bump, workspace) =
            (shared.0.clone(), bump.clone(), props.workspace_id.clone());
        Callback::from(move |created: Vec<domain::board::Block>| {
            {
                let mut engine = engine.borrow_mut();
                for block in &created {
                    engine.board.upsert_block(crate::model::short(block));
                }
            }
            bump.emit(());
            // The new tasks' issue links were recorded with them; load them like on page load.
            reload_github(engine.clone(), workspace.clone(), bump.clone());
        })
    };
    let panel = selected.map(|id| {
        let is_fresh = fresh.as_ref() == Some(&id);
        let key = id.to_string();
        html! {
            <Panel {key} engine={shared.clone()} workspace_id={props.workspace_id.clone()}
                block_id={id} tick={tick.0} fresh={is_fresh} queue={(*queue).clone()} {read_only}
                collapsed={*panel_collapsed} {on_run} {on_github} {on_imported}
                manages_settings={role.is_some_and(|role| role.allows(domain::access::Permission::ManageSettings))} />
        }
    });
    let confirm_dialog = confirm.as_ref().zip(confirm_text).map(|(ids, text)| {
        let no = {
            let confirm = confirm.clone();
            Callback::from(move |_: MouseEvent| confirm.set(None))
        };
        html! {
            <div class="modal-backdrop">
                <div class="modal" role="alertdialog" aria-modal="true" data-testid="confirm-delete">
                    <p>{ text }</p>
                    <p class="muted small">{ "Ctrl+Z brings it back." }</p>
                    <div class="modal-actions">
                        <button class="button" onclick={no}>{ "Cancel" }</button>
                        <button class="button danger" onclick={send(Command::Delete(ids.clone()))} data-testid="confirm-delete-yes" autofocus=true>{ "Delete" }</button>
                    </div>
                </div>
            </div>
        }
    });
    let shortcuts_sheet = shortcuts.then(|| {
        html! {
            <div class="modal-backdrop" onclick={send(Command::ToggleShortcuts)}>
                <div class="modal shortcuts" role="dialog" aria-modal="true" aria-label="Keyboard shortcuts" data-testid="shortcuts-sheet">
                    <h2>{ "Keyboard shortcuts" }</h2>
                    <table>
                        { for SHORTCUTS.iter().map(|(keys, what)| html! {
                            <tr><th><kbd>{ *keys }</kbd></th><td>{ *what }</td></tr>
                        }) }
                    </table>
                    <p class="muted small">{ "Shortcuts never fire while you type in a field." }</p>
                </div>
            </div>
        }
    });
    let members_dialog = members_open.then(|| {
        let close = {
            let members_open = members_open.clone();
            Callback::from(move |_| members_open.set(false))
        };
        // The account's members too, for whoever manages them (an admin of the organisation).
        let account_id = shared.0.borrow().board.workspace.account_id.clone();
        let account = match &app.session {
            crate::app::Session::SignedIn(me) => me
                .accounts
                .iter()
                .find(|account| {
                    account.id == account_id
                        && domain::access::manages_account_members(account.kind, account.role)
                })
                .cloned(),
            _ => None,
        };
        html! {
            <MembersDialog workspace_id={props.workspace_id.clone()} can_manage={role == Some(WorkspaceRole::Admin)}
                {account} on_close={close} />
        }
    });
    let account_id = shared.0.borrow().board.workspace.account_id.clone();
    let github_dialog = github_open.then(|| {
        let close = {
            let github_open = github_open.clone();
            Callback::from(move |_| github_open.set(false))
        };
        let on_disconnected = {
            let (engine, bump, workspace) = (
                shared.0.clone(),
                bump.clone(),
                props.workspace_id.clone(),
            );
            Callback::from(move |_| reload_github(engine.clone(), workspace.clone(), bump.clone()))
        };
        html! { <GithubDialog account_id={account_id.clone()} on_close={close} {on_disconnected} /> }
    });
    let open_github = {
        let github_open = github_open.clone();
        Callback::from(move |_: MouseEvent| github_open.set(true))
    };
    let open_members = {
        let members_open = members_open.clone();
        Callback::from(move |_: MouseEvent| members_open.set(true))
    };
    let refusal_bubble = refusal.as_ref().map(|shown| {
        let hide = {
            let refusal = refusal.clone();
            Callback::from(move |_: AnimationEvent| refusal.set(None))
        };
        html! {
            <div class="refusal" data-testid="drop-refusal" role="alert"
                style={format!("left:{:.0}px;top:{:.0}px", shown.x, shown.y)}
                onanimationend={hide}>
                { shown.message.clone() }
            </div>
        }
    });
    let context_menu = menu.as_ref().map(|shown| {
        let close = {
            let queue = queue.clone();
            Callback::from(move |event: MouseEvent| {
                event.prevent_default();
                queue.send(Command::CloseMenu);
            })
        };
        html! {
            <>
                <div class="menu-backdrop" data-testid="menu-backdrop" onclick={close.clone()} oncontextmenu={close}></div>
                <div class="context-menu" role="menu" data-testid="context-menu"
                    style={format!("left:{:.0}px;top:{:.0}px", shown.x, shown.y)}>
                    { for shown.items.iter().map(|item| {
                        let pick = {
                            let (queue, command) = (queue.clone(), item.command.clone());
                            Callback::from(move |_: MouseEvent| {
                                queue.send(Command::CloseMenu);
                                queue.send(command.clone());
                            })
                        };
                        html! {
                            <button class={classes!("menu-item", item.danger.then_some("danger"))} role="menuitem"
                                data-testid={format!("menu-{}", item.name)} onclick={pick}>
                                <span>{ item.label }</span>
                                <kbd>{ item.keys }</kbd>
                            </button>
                        }
                    }) }
                </div>
            </>
        }
    });
    let finder_dialog = finder.then(|| {
        html! { <Finder engine={shared.clone()} queue={(*queue).clone()} /> }
    });
    let live_title = match &*status {
        LiveStatus::Live => "Live: changes by others appear as they happen".to_owned(),
        LiveStatus::Connecting => "Connecting to live updates…".to_owned(),
        LiveStatus::Reconnecting { attempt, delay_ms } => {
            format!(
                "Connection lost; retrying in {:.1} s (attempt {attempt})",
                *delay_ms as f64 / 1000.0
            )
        }
        LiveStatus::Offline(reason) => format!("Not live: {reason}"),
    };
    let live_label = match &*status {
        LiveStatus::Live => "Live",
        LiveStatus::Connecting => "Connecting",
        LiveStatus::Reconnecting { .. } => "Reconnecting",
        LiveStatus::Offline(_) => "Offline",
    };
    html! {
        <main class={classes!("board-page", read_only.then_some("read-only"))} data-testid="board"
            data-workspace-id={props.workspace_id.to_string()} data-read-only={read_only.to_string()}>
            <div class="toolbar" role="toolbar" aria-label="Board tools">
                <span class="board-name" title={workspace_name.clone()}>{ workspace_name }</span>
                <span class="divider-v"></span>
                if read_only {
                    <span class="read-only-badge" data-testid="read-only-badge" title="You are a viewer of this workspace">{ "View only" }</span>
                } else {
                    <button class="tool" onclick={send(Command::AddToSelection(Level::Frame))} data-testid="add-frame" title="Add a frame (a service)">{ "+ Frame" }</button>
                    <button class="tool" onclick={send(Command::AddToSelection(Level::Module))} data-testid="add-module" title="Add a module to the selected frame">{ "+ Module" }</button>
                    <button class="tool" onclick={send(Command::AddToSelection(Level::Task))} data-testid="add-task" title="Add a task to the selected frame or module">{ "+ Task" }</button>
                    <span class="divider-v"></span>
                    <button class="tool" onclick={send(Command::Undo)} disabled={!can_undo} data-testid="undo" title="Undo (Ctrl+Z)">{ "↶ Undo" }</button>
                    <button class="tool" onclick={send(Command::Redo)} disabled={!can_redo} data-testid="redo" title="Redo (Ctrl+Shift+Z or Ctrl+Y)">{ "↷ Redo" }</button>
                    if selected_edge.is_some() {
                        <button class="tool danger" onclick={send(Command::DeleteSelection)} data-testid="delete-edge" title="Remove the selected dependency (Delete)">{ "Remove dependency" }</button>
                    }
                }
                <span class="spacer"></span>
                if multi_count > 1 {
                    <span class="selection-count" data-testid="selection-count">{ format!("{multi_count} selected") }</span>
                    if !read_only {
                        <button class="tool danger" onclick={send(Command::DeleteSelection)} data-testid="delete-selection" title="Delete the selected blocks (Delete)">{ "Delete" }</button>
                    }
                }
                <span class="spend-total muted small" data-testid="workspace-spend" title={spend_title}
                    data-cost={spend_cost}>{ spend_text }</span>
                <span class="muted small" data-testid="block-count">{ format!("{blocks} blocks") }</span>
                <div class="zoom-group">
                    <button class="tool icon" onclick={send(Command::ZoomBy(0.8))} aria-label="Zoom out" title="Zoom out (−)">{ "−" }</button>
                    <span class="zoom-label" ref={zoom_label} data-testid="zoom-label">{ zoom_text }</span>
                    <button class="tool icon" onclick={send(Command::ZoomBy(1.25))} aria-label="Zoom in" title="Zoom in (+)">{ "+" }</button>
                    <button class="tool" onclick={send(Command::Fit)} data-testid="zoom-fit" title="Zoom to fit (0)">{ "Fit" }</button>
                    <button class={classes!("tool", minimap_shown.then_some("active"))} onclick={send(Command::ToggleMinimap)}
                        data-testid="toggle-minimap" aria-pressed={minimap_shown.to_string()} title="Show or hide the map of the whole board">{ "Map" }</button>
                </div>
                <button class="tool" onclick={open_members} data-testid="open-members" title="Who can see and edit this board">{ "Members" }</button>
                <button class="tool" onclick={open_github} data-testid="open-github" title="Connect GitHub to this workspace's account">{ "GitHub" }</button>
                <button class="tool icon" onclick={send(Command::ToggleShortcuts)} data-testid="show-shortcuts" aria-label="Keyboard shortcuts" title="Keyboard shortcuts (?)">{ "?" }</button>
                <span class="presence" data-testid="presence" aria-label="Who else is on this board">
                    { for others.iter().map(|other| html! {
                        <span class="avatar" title={other.title.clone()} data-testid="present-person"
                            data-login={other.login.clone()}
                            data-blocks={other.blocks.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")}>
                            { other.initials.clone() }
                        </span>
                    }) }
                </span>
                <span class="live" data-testid="live-status" data-state={status.state()} title={live_title}>
                    <span class="dot"></span>{ live_label }
                </span>
            </div>
            // Every optional part is one child that is always there (empty when unused), never
            // `{ for option }`: Yew matches unkeyed children from the end, so a child that comes and
            // goes after the canvas would make Yew rebuild the canvas (losing its listeners, the
            // pointer capture and the focus mid-gesture). See `components::slot`.
            <div class="board-body">
                <div class="canvas-wrap">
                    <Canvas engine={shared.clone()} tick={tick.0} queue={(*queue).clone()} {open_markers} />
                    { slot(refusal_bubble) }
                    { slot(context_menu) }
                </div>
                { slot(panel) }
            </div>
            { slot(confirm_dialog) }
            { slot(shortcuts_sheet) }
            { slot(members_dialog) }
            { slot(finder_dialog) }
            { slot(github_dialog) }
        </main>
    }
}

/// Loads the runs of the board's tasks, the blocks' GitHub state and what was spent this month (after
/// the snapshot, and again after a resync); the event stream keeps them live from then on.
fn load_runs_and_spend(
    weak: std::rc::Weak<RefCell<Engine>>,
    workspace: WorkspaceId,
    bump: Callback<()>,
) {
    wasm_bindgen_futures::spawn_local(async move {
        let runs = api::runs(&workspace).await;
        let lines = api::workspace_spend(&workspace).await;
        let github = api::github_blocks(&workspace).await;
        let Some(account) = weak
            .upgrade()
            .map(|shared| shared.borrow().board.workspace.account_id.clone())
        else {
            return;
        };
        // A person who is not a member of the workspace's account cannot see its budget (404).
        let account_spend = api::account_spend(&account).await.ok();
        let Some(shared) = weak.upgrade() else {
            return;
        };
        {
            let mut engine = shared.borrow_mut();
            if let Ok(runs) = runs {
                // Runs the stream already told us about while these loaded are kept as they are.
                for (block, run) in latest_per_block(runs) {
                    engine.board.runs.entry(block).or_insert(run);
                }
            }
            if let Ok(states) = github {
                // States the stream already delivered while these loaded are newer: kept.
                for state in states {
                    engine
                        .board
                        .github
                        .entry(state.block_id.clone())
                        .or_insert(state);
                }
            }
            if let Ok(lines) = lines {
                let mut tally = SpendTally::from_lines(&lines);
                tally.account = account_spend;
                engine.board.spend = tally;
            }
            engine.board.version += 1;
        }
        bump.emit(());
    });
}

/// Reloads the blocks' GitHub state after a GitHub change made from this tab (the hub does not echo
/// a tab's own changes, and an import or a disconnect changes blocks other than the one answered).
fn reload_github(engine: Rc<RefCell<Engine>>, workspace: WorkspaceId, bump: Callback<()>) {
    wasm_bindgen_futures::spawn_local(async move {
        if let Ok(states) = api::github_blocks(&workspace).await {
            let mut engine = engine.borrow_mut();
            for state in states {
                if crate::model::github::store_state(&mut engine.board.github, state) {
                    engine.board.version += 1;
                }
            }
        }
        bump.emit(());
    });
}

/// Fetches a run the stream named but the board does not hold yet (started elsewhere, or after the
/// board loaded).
fn fetch_run(
    weak: std::rc::Weak<RefCell<Engine>>,
    workspace: WorkspaceId,
    run_id: RunId,
    bump: Callback<()>,
) {
    wasm_bindgen_futures::spawn_local(async move {
        let Ok(run) = api::run(&workspace, &run_id).await else {
            return;
        };
        let Some(shared) = weak.upgrade() else {
            return;
        };
        {
            let mut engine = shared.borrow_mut();
            if store_run(&mut engine.board.runs, run) {
                engine.board.version += 1;
            }
        }
        bump.emit(());
    });
}
