//! The side panel of the selected block: title, status, repository (frames), description and
//! requirements (the full block is loaded with `GET` when it is selected or changes), its dependencies,
//! and its actions.
//!
//! The fields are [`TextField`]s: they keep the person's typing through saves and through other
//! people's edits. A block deleted by someone else while its panel is open keeps its panel, says so, and
//! leaves the fields (and any unsaved text) there to copy.

use domain::board::{Block, BlockStatus, BoardBlock, Level};
use domain::ids::{BlockId, WorkspaceId};
use web_sys::HtmlSelectElement;
use yew::prelude::*;

use crate::api;
use crate::command_queue::CommandQueue;
use crate::components::canvas::SharedEngine;
use crate::components::github::GithubSection;
use crate::components::run_panel::RunPanel;
use crate::components::text_field::TextField;
use crate::model::commands::Command;
use crate::model::edit::Edit;
use crate::model::{self, ALL_STATUSES};

#[derive(Properties, PartialEq)]
pub struct PanelProps {
    pub engine: SharedEngine,
    pub workspace_id: WorkspaceId,
    pub block_id: BlockId,
    /// Changes whenever the board changed (the panel re-reads the block).
    pub tick: u64,
    /// Focus the title (the block was just created).
    pub fresh: bool,
    pub queue: CommandQueue,
    /// A viewer's board: everything is shown, nothing can be changed.
    pub read_only: bool,
    /// A run as the API answered it (the run panel's calls): the page stores it on the board.
    pub on_run: Callback<domain::api::runs::RunRecord>,
    /// A block's GitHub state as the API answered it (the GitHub section's link): the page stores it.
    pub on_github: Callback<domain::api::github::BlockGithub>,
    /// Tasks an issue import created: the page puts them on the board.
    pub on_imported: Callback<Vec<Block>>,
    /// The caller may change the workspace's settings (its default model, from the run panel).
    #[prop_or_default]
    pub manages_settings: bool,
    /// Folded to a narrow strip (the fields stay in the page, hidden, so nothing typed is lost).
    #[prop_or_default]
    pub collapsed: bool,
}

#[function_component]
pub fn Panel(props: &PanelProps) -> Html {
    let full = use_state(|| None::<Block>);
    let last_known = use_mut_ref(|| None::<BoardBlock>);
    let current = props
        .engine
        .0
        .borrow()
        .board
        .blocks
        .get(&props.block_id)
        .cloned();
    let deleted = current.is_none();
    if let Some(block) = &current {
        *last_known.borrow_mut() = Some(block.clone());
    }
    let rev = current.as_ref().map(|block| block.rev);
    {
        let full = full.clone();
        let workspace = props.workspace_id.clone();
        use_effect_with((props.block_id.clone(), rev), move |(id, rev)| {
            if rev.is_some() {
                let id = id.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(block) = api::block(&workspace, &id).await {
                        full.set(Some(block));
                    }
                });
            }
        });
    }
    let Some(short) = current.or_else(|| last_known.borrow().clone()) else {
        return html! {};
    };
    let id = props.block_id.clone();
    let locked = props.read_only || deleted;
    let queue = &props.queue;
    let save = |make: fn(String) -> Edit| {
        let id = id.clone();
        queue.callback(move |value: String| Command::Edit {
            id: id.clone(),
            edit: make(value),
        })
    };
    let loaded = full.as_ref().filter(|block| block.id == id);
    let choose_model = {
        let id = id.clone();
        let unchanged = loaded.and_then(|block| block.model_id.clone());
        queue.callback(move |model: String| Command::Edit {
            id: id.clone(),
            edit: Edit {
                model_id: (unchanged.as_ref() != Some(&model)).then_some(Some(model)),
                ..Edit::default()
            },
        })
    };
    let status_changed = {
        let id = id.clone();
        let queue = queue.clone();
        Callback::from(move |event: Event| {
            let value = event.target_unchecked_into::<HtmlSelectElement>().value();
            if let Some(status) = BlockStatus::parse(&value) {
                queue.send(Command::Edit {
                    id: id.clone(),
                    edit: Edit {
                        status: Some(status),
                        ..Edit::default()
                    },
                });
            }
        })
    };
    let send = |command: Command| {
        let queue = queue.clone();
        Callback::from(move |_: MouseEvent| queue.send(command.clone()))
    };
    let engine = props.engine.0.borrow();
    let mut depends_on: Vec<_> = engine
        .board
        .edges
        .values()
        .filter(|edge| edge.from == id)
        .collect();
    depends_on.sort_by(|a, b| a.id.cmp(&b.id));
    let mut needed_by: Vec<_> = engine
        .board
        .edges
        .values()
        .filter(|edge| edge.to == id)
        .collect();
    needed_by.sort_by(|a, b| a.id.cmp(&b.id));
    let title_of = |block: &BlockId| {
        engine
            .board
            .blocks
            .get(block)
            .map_or("(deleted)".to_owned(), |block| block.title.clone())
    };
    let edge_row = |edge_id: &domain::ids::EdgeId, other: &BlockId| {
        html! {
            <li key={edge_id.to_string()} data-testid="dependency">
                <button class="link" onclick={send(Command::ZoomTo(other.clone()))} title="Show it on the board">{ title_of(other) }</button>
                if !locked {
                    <button class="ghost icon" aria-label="Remove dependency" onclick={send(Command::RemoveEdge(edge_id.clone()))}>{ "×" }</button>
                }
            </li>
        }
    };
    let parent = short.parent_id.as_ref().map(title_of);
    let level = short.level;
    html! {
        <aside class={classes!("panel", deleted.then_some("deleted"), props.collapsed.then_some("collapsed"))}
            data-testid="block-panel" data-block-id={id.to_string()} aria-label="Block details">
            <button class="panel-expand" onclick={send(Command::TogglePanel)} data-testid="panel-expand"
                title="Show the details" aria-label="Show the details">{ "‹ Details" }</button>
            <div class="panel-head">
                <span class={classes!("level-badge", level.as_str())}>{ level.as_str() }</span>
                if let Some(parent) = parent {
                    <span class="muted crumb">{ format!("in {parent}") }</span>
                }
                <span class="spacer"></span>
                <button class="ghost icon" aria-label="Fold the panel" title="Fold the panel (more room for the board)"
                    onclick={send(Command::TogglePanel)} data-testid="panel-collapse">{ "›" }</button>
                <button class="ghost icon" aria-label="Close panel" onclick={send(Command::Select(None))} data-testid="panel-close">{ "×" }</button>
            </div>
            if deleted {
                <div class="panel-deleted" role="alert" data-testid="panel-deleted">
                    { "Someone else deleted this block. Anything you typed is still below: copy what you need, then close the panel." }
                </div>
            }
            <label class="field">
                <span>{ "Title" }</span>
                <TextField value={short.title.clone()} testid="panel-title" required=true readonly={locked}
                    focus={props.fresh} on_save={save(|value| Edit { title: Some(value), ..Edit::default() })} />
            </label>
            <label class="field">
                <span>{ "Status" }</span>
                <select onchange={status_changed} data-testid="panel-status" disabled={locked}>
                    { for ALL_STATUSES.iter().map(|status| html! {
                        <option value={status.as_str()} selected={*status == short.status}>{ model::status_label(*status) }</option>
                    }) }
                </select>
            </label>
            if level == Level::Frame {
                <label class="field">
                    <span>{ "Repository" }</span>
                    <TextField value={short.repo_url.clone().unwrap_or_default()} testid="panel-repo" readonly={locked}
                        maxlength={500} placeholder="https://github.com/owner/repo (empty: not linked)"
                        on_save={save(|value| Edit {
                            repo_url: Some(Some(value.trim().to_owned()).filter(|url| !url.is_empty())),
                            ..Edit::default()
                        })} />
                </label>
            }
            if let Some(block) = loaded {
                <label class="field">
                    <span>{ "Description" }</span>
                    <TextField value={block.description.clone()} multiline=true rows={4} maxlength={20000}
                        testid="panel-description" readonly={locked} placeholder="What this is and why it exists"
                        on_save={save(|value| Edit { description: Some(value), ..Edit::default() })} />
                </label>
                <label class="field">
                    <span>{ if level == Level::Task { "Requirements (acceptance criteria)" } else { "Requirements" } }</span>
                    <TextField value={block.requirements.clone()} multiline=true rows={6} maxlength={20000}
                        testid="panel-requirements" readonly={locked} placeholder="- It must…"
                        on_save={save(|value| Edit { requirements: Some(value), ..Edit::default() })} />
                </label>
            } else if !deleted {
                <p class="muted">{ "Loading details…" }</p>
            }
            if level != Level::Module && !deleted {
                <GithubSection engine={props.engine.clone()} workspace_id={props.workspace_id.clone()}
                    block_id={id.clone()} {level} tick={props.tick} read_only={locked}
                    on_state={props.on_github.clone()} on_imported={props.on_imported.clone()} />
            }
            // After the text fields, so Tab walks title → status → description → requirements without
            // stopping in the run's controls.
            if level == Level::Task && !deleted {
                <RunPanel engine={props.engine.clone()} workspace_id={props.workspace_id.clone()}
                    block_id={id.clone()} tick={props.tick} read_only={props.read_only} on_run={props.on_run.clone()}
                    block_model={loaded.and_then(|block| block.model_id.clone())}
                    on_choose_model={choose_model} manages_settings={props.manages_settings} />
            }
            <div class="deps">
                <h3>{ "Depends on" }</h3>
                if depends_on.is_empty() {
                    <p class="muted small">{ "Nothing. Drag from the dot on a block's right edge to another block." }</p>
                }
                <ul>{ for depends_on.iter().map(|edge| edge_row(&edge.id, &edge.to)) }</ul>
                if !needed_by.is_empty() {
                    <h3>{ "Needed by" }</h3>
                    <ul>{ for needed_by.iter().map(|edge| edge_row(&edge.id, &edge.from)) }</ul>
                }
            </div>
            <div class="panel-actions">
                if !deleted {
                    <button class="button" onclick={send(Command::ZoomTo(id.clone()))} data-testid="zoom-to-block">{ "Zoom to" }</button>
                }
                if !locked {
                    <button class="button danger" onclick={send(Command::AskDelete(vec![id.clone()]))} data-testid="delete-block">{ "Delete…" }</button>
                }
            </div>
        </aside>
    }
}
