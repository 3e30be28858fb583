//! The side panel of the selected block: title, status, description and requirements (the full block is
//! loaded with `GET` when it is selected), its dependencies, and its actions.

use domain::board::{Block, BlockStatus, Level};
use domain::ids::{BlockId, EdgeId, WorkspaceId};
use web_sys::{HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement};
use yew::prelude::*;

use crate::api;
use crate::components::canvas::SharedEngine;
use crate::model::{self, ALL_STATUSES};

/// Fields of a block an edit changes (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Edit {
    pub title: Option<String>,
    pub description: Option<String>,
    pub requirements: Option<String>,
    pub status: Option<BlockStatus>,
}

#[derive(Properties, PartialEq)]
pub struct PanelProps {
    pub engine: SharedEngine,
    pub workspace_id: WorkspaceId,
    pub block_id: BlockId,
    /// The block's revision: a change (here or live) reloads the full block.
    pub rev: i64,
    /// Focus the title (the block was just created).
    pub fresh: bool,
    pub on_edit: Callback<(BlockId, Edit)>,
    pub on_delete: Callback<BlockId>,
    pub on_zoom: Callback<BlockId>,
    pub on_remove_edge: Callback<EdgeId>,
    pub on_close: Callback<()>,
}

#[function_component]
pub fn Panel(props: &PanelProps) -> Html {
    let full = use_state(|| None::<Block>);
    let title_ref = use_node_ref();
    {
        let full = full.clone();
        let workspace = props.workspace_id.clone();
        use_effect_with((props.block_id.clone(), props.rev), move |(id, _)| {
            let id = id.clone();
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(block) = api::block(&workspace, &id).await {
                    full.set(Some(block));
                }
            });
        });
    }
    {
        let title_ref = title_ref.clone();
        let loaded = full.as_ref().map(|block| block.id.clone());
        use_effect_with((loaded, props.fresh), move |(loaded, fresh)| {
            if *fresh
                && loaded.is_some()
                && let Some(input) = title_ref.cast::<HtmlInputElement>()
            {
                let _ = input.focus();
                input.select();
            }
        });
    }
    let engine = props.engine.0.borrow();
    let Some(short) = engine.board.blocks.get(&props.block_id) else {
        return html! {};
    };
    let id = props.block_id.clone();
    let edit = |make: fn(String) -> Edit| {
        let on_edit = props.on_edit.clone();
        let id = id.clone();
        move |value: String| on_edit.emit((id.clone(), make(value)))
    };
    let loaded = full.as_ref().filter(|block| block.id == id);
    let title_changed = {
        let send = edit(|value| Edit {
            title: Some(value),
            ..Edit::default()
        });
        let current = short.title.clone();
        Callback::from(move |event: Event| {
            let value = event.target_unchecked_into::<HtmlInputElement>().value();
            if value.trim() != current && !value.trim().is_empty() {
                send(value.trim().to_owned());
            }
        })
    };
    let title_keys = Callback::from(|event: KeyboardEvent| {
        if event.key() == "Enter" {
            let input: HtmlInputElement = event.target_unchecked_into();
            let _ = input.blur();
        }
    });
    let status_changed = {
        let (on_edit, id) = (props.on_edit.clone(), id.clone());
        Callback::from(move |event: Event| {
            let value = event.target_unchecked_into::<HtmlSelectElement>().value();
            if let Some(status) = BlockStatus::parse(&value) {
                on_edit.emit((
                    id.clone(),
                    Edit {
                        status: Some(status),
                        ..Edit::default()
                    },
                ));
            }
        })
    };
    let text_changed = |make: fn(String) -> Edit, current: Option<String>| {
        let send = edit(make);
        Callback::from(move |event: Event| {
            let value = event.target_unchecked_into::<HtmlTextAreaElement>().value();
            if current.as_deref() != Some(value.as_str()) {
                send(value);
            }
        })
    };
    let description_changed = text_changed(
        |value| Edit {
            description: Some(value),
            ..Edit::default()
        },
        loaded.map(|block| block.description.clone()),
    );
    let requirements_changed = text_changed(
        |value| Edit {
            requirements: Some(value),
            ..Edit::default()
        },
        loaded.map(|block| block.requirements.clone()),
    );
    let delete = {
        let (on_delete, id) = (props.on_delete.clone(), id.clone());
        Callback::from(move |_: MouseEvent| on_delete.emit(id.clone()))
    };
    let zoom = {
        let (on_zoom, id) = (props.on_zoom.clone(), id.clone());
        Callback::from(move |_: MouseEvent| on_zoom.emit(id.clone()))
    };
    let close = props.on_close.reform(|_: MouseEvent| ());
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
    let edge_row = |edge_id: &EdgeId, other: &BlockId| {
        let remove = {
            let (on_remove, edge_id) = (props.on_remove_edge.clone(), edge_id.clone());
            Callback::from(move |_: MouseEvent| on_remove.emit(edge_id.clone()))
        };
        html! {
            <li key={edge_id.to_string()} data-testid="dependency">
                <span>{ title_of(other) }</span>
                <button class="ghost icon" aria-label="Remove dependency" onclick={remove}>{ "×" }</button>
            </li>
        }
    };
    let parent = short.parent_id.as_ref().map(title_of);
    let level = short.level;
    let rev_key = format!("{}-{}", id, short.rev);
    html! {
        <aside class="panel" data-testid="block-panel" data-block-id={id.to_string()} aria-label="Block details">
            <div class="panel-head">
                <span class={classes!("level-badge", level.as_str())}>{ level.as_str() }</span>
                if let Some(parent) = parent {
                    <span class="muted crumb">{ format!("in {parent}") }</span>
                }
                <span class="spacer"></span>
                <button class="ghost icon" aria-label="Close panel" onclick={close} data-testid="panel-close">{ "×" }</button>
            </div>
            <label class="field">
                <span>{ "Title" }</span>
                <input key={format!("title-{rev_key}")} ref={title_ref} value={short.title.clone()}
                    onchange={title_changed} onkeydown={title_keys} data-testid="panel-title" maxlength="200" />
            </label>
            <label class="field">
                <span>{ "Status" }</span>
                <select key={format!("status-{rev_key}")} onchange={status_changed} data-testid="panel-status">
                    { for ALL_STATUSES.iter().map(|status| html! {
                        <option value={status.as_str()} selected={*status == short.status}>{ model::status_label(*status) }</option>
                    }) }
                </select>
            </label>
            if let Some(block) = loaded {
                <label class="field">
                    <span>{ "Description" }</span>
                    <textarea key={format!("description-{rev_key}")} rows="4" value={block.description.clone()}
                        onchange={description_changed} data-testid="panel-description"
                        placeholder="What this is and why it exists" />
                </label>
                <label class="field">
                    <span>{ if level == Level::Task { "Requirements (acceptance criteria)" } else { "Requirements" } }</span>
                    <textarea key={format!("requirements-{rev_key}")} rows="6" value={block.requirements.clone()}
                        onchange={requirements_changed} data-testid="panel-requirements"
                        placeholder="- It must…" />
                </label>
            } else {
                <p class="muted">{ "Loading details…" }</p>
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
                <button class="button" onclick={zoom} data-testid="zoom-to-block">{ "Zoom to" }</button>
                <button class="button danger" onclick={delete} data-testid="delete-block">{ "Delete…" }</button>
            </div>
        </aside>
    }
}
