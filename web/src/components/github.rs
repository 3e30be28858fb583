//! GitHub on the board (issue 15): the lines a block's card shows, the side panel's GitHub section
//! (a frame's repository link with a form to link one from the installation's list, issue import; a
//! task's pull request, CI, review and issue), and the account's GitHub dialog ("Connect GitHub",
//! the installations, disconnect). What each line says and which colour it gets is decided in
//! `model::github`; this only renders and calls the API.

use domain::api::github::{
    BlockGithub, GithubInstallationView, GithubRepositoryView, ImportIssuesRequest,
    LinkRepositoryRequest,
};
use domain::board::Level;
use domain::ids::{AccountId, BlockId, WorkspaceId};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::api::{self, ApiFailure};
use crate::components::canvas::SharedEngine;
use crate::model::github::{self as model, GithubLine};

fn explain(failure: &ApiFailure) -> String {
    model::explain_failure(failure.status, failure.code, &failure.message)
}

fn line_html(line: &GithubLine) -> Html {
    let class = classes!("gh-line", line.class);
    match &line.href {
        Some(href) => html! {
            <a {class} href={href.clone()} target="_blank" rel="noopener" data-github={line.kind}
                title="Open on GitHub">{ line.text.clone() }</a>
        },
        None => html! {
            <span {class} data-github={line.kind} title={line.text.clone()}>{ line.text.clone() }</span>
        },
    }
}

/// The GitHub lines of a block's card (`None`: nothing to show).
pub fn card_lines(engine: &crate::components::canvas::Engine, block: &BlockId) -> Option<Html> {
    let lines = model::card_lines(engine.board.github.get(block)?);
    (!lines.is_empty()).then(|| {
        html! {
            <span class="github-line" data-testid="card-github">
                { for lines.iter().map(line_html) }
            </span>
        }
    })
}

#[derive(Properties, PartialEq)]
pub struct GithubSectionProps {
    pub engine: SharedEngine,
    pub workspace_id: WorkspaceId,
    pub block_id: BlockId,
    pub level: Level,
    /// Changes whenever the board changed (the section re-reads the block's state).
    pub tick: u64,
    pub read_only: bool,
    /// A block's GitHub state as the API answered it (a link): the page stores it on the board and
    /// redraws. The hub does not echo this tab's own change back, so no event will.
    pub on_state: Callback<BlockGithub>,
    /// The tasks an issue import created (no event echoes them to this tab either).
    pub on_imported: Callback<Vec<domain::board::Block>>,
}

/// The side panel's GitHub section.
#[function_component]
pub fn GithubSection(props: &GithubSectionProps) -> Html {
    let repositories = use_state(|| None::<Vec<GithubRepositoryView>>);
    let message = use_state(|| None::<(bool, String)>);
    let busy = use_state(|| false);
    let repository_ref = use_node_ref();
    let folder_ref = use_node_ref();
    let state = props
        .engine
        .0
        .borrow()
        .board
        .github
        .get(&props.block_id)
        .cloned();
    let lines = state
        .as_ref()
        .map(|state| model::lines(state, usize::MAX))
        .unwrap_or_default();
    let is_frame = props.level == Level::Frame;
    if !is_frame && lines.is_empty() {
        return html! {};
    }
    let linked = state
        .as_ref()
        .is_some_and(|state| state.repo_link.is_some());
    let choose = {
        let (repositories, message, workspace) = (
            repositories.clone(),
            message.clone(),
            props.workspace_id.clone(),
        );
        Callback::from(move |_: MouseEvent| {
            let (repositories, message, workspace) =
                (repositories.clone(), message.clone(), workspace.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::github_repositories(&workspace, 1, false).await {
                    Ok(page) if page.repositories.is_empty() => {
                        repositories.set(Some(Vec::new()));
                        message.set(Some((
                            true,
                            "No repositories yet: connect GitHub to this workspace's account (the GitHub button in the toolbar).".to_owned(),
                        )));
                    }
                    Ok(page) => {
                        message.set(None);
                        repositories.set(Some(page.repositories));
                    }
                    Err(failure) => message.set(Some((true, explain(&failure)))),
                }
            });
        })
    };
    let link = {
        let (repository_ref, folder_ref, message, busy, on_state, workspace, block) = (
            repository_ref.clone(),
            folder_ref.clone(),
            message.clone(),
            busy.clone(),
            props.on_state.clone(),
            props.workspace_id.clone(),
            props.block_id.clone(),
        );
        Callback::from(move |_: MouseEvent| {
            let Some(select) = repository_ref.cast::<HtmlSelectElement>() else {
                return;
            };
            let repository = select.value();
            if repository.is_empty() {
                message.set(Some((true, "Choose a repository first.".to_owned())));
                return;
            }
            let sub_directory = folder_ref
                .cast::<HtmlInputElement>()
                .and_then(|input| model::sub_directory_of(&input.value()));
            let request = LinkRepositoryRequest {
                repository,
                sub_directory,
            };
            let (message, busy, on_state, workspace, block) = (
                message.clone(),
                busy.clone(),
                on_state.clone(),
                workspace.clone(),
                block.clone(),
            );
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                match api::link_github_repository(&workspace, &block, &request).await {
                    Ok(state) => {
                        on_state.emit(state);
                        message.set(Some((false, format!("Linked to {}.", request.repository))));
                    }
                    Err(failure) => message.set(Some((true, explain(&failure)))),
                }
                busy.set(false);
            });
        })
    };
    let import = {
        let (message, busy, workspace, block, on_imported) = (
            message.clone(),
            busy.clone(),
            props.workspace_id.clone(),
            props.block_id.clone(),
            props.on_imported.clone(),
        );
        Callback::from(move |_: MouseEvent| {
            let (message, busy, workspace, block, on_imported) = (
                message.clone(),
                busy.clone(),
                workspace.clone(),
                block.clone(),
                on_imported.clone(),
            );
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                match api::import_github_issues(&workspace, &block, &ImportIssuesRequest::default())
                    .await
                {
                    Ok(result) => {
                        message.set(Some((
                            false,
                            format!(
                                "Imported {} issue{} as tasks ({} imported before).",
                                result.created.len(),
                                if result.created.len() == 1 { "" } else { "s" },
                                result.already_imported.len()
                            ),
                        )));
                        on_imported.emit(result.created);
                    }
                    Err(failure) => message.set(Some((true, explain(&failure)))),
                }
                busy.set(false);
            });
        })
    };
    let form = (is_frame && !props.read_only).then(|| {
        let picker = match repositories.as_ref() {
            Some(list) if !list.is_empty() => html! {
                <div class="github-link-form" data-testid="github-link-form">
                    <select ref={repository_ref.clone()} data-testid="github-repo-select" aria-label="Repository">
                        { for list.iter().map(|repository| html! {
                            <option value={repository.full_name.clone()}>{ repository.full_name.clone() }</option>
                        }) }
                    </select>
                    <input ref={folder_ref.clone()} type="text" data-testid="github-subdir" maxlength="200"
                        placeholder="folder (optional), e.g. services/billing" aria-label="Folder in the repository" />
                    <button class="button primary" onclick={link} disabled={*busy} data-testid="github-link">{ "Link" }</button>
                </div>
            },
            _ => html! {
                <button class="button" onclick={choose} data-testid="github-choose-repo">
                    { if linked { "Link another repository…" } else { "Link a GitHub repository…" } }
                </button>
            },
        };
        html! {
            <>
                { picker }
                if linked {
                    <button class="button" onclick={import} disabled={*busy} data-testid="github-import-issues"
                        title="Make a task under this frame from each open issue of the repository (once per issue)">{ "Import issues" }</button>
                }
            </>
        }
    });
    let note = message.as_ref().map(|(is_error, text)| {
        html! {
            <p class={classes!("small", if *is_error { "error" } else { "muted" })} role="status"
                data-testid="github-message">{ text.clone() }</p>
        }
    });
    html! {
        <div class="github-section" data-testid="panel-github">
            <h3>{ "GitHub" }</h3>
            if lines.is_empty() {
                <p class="muted small">{ "Not linked to a repository." }</p>
            }
            <div class="gh-lines">{ for lines.iter().map(line_html) }</div>
            { crate::components::slot(form) }
            { crate::components::slot(note) }
        </div>
    }
}

#[derive(Properties, PartialEq)]
pub struct GithubDialogProps {
    pub account_id: AccountId,
    pub on_close: Callback<()>,
    /// An installation was disconnected: its frames were unlinked, and the hub does not echo this
    /// tab's own change, so the page reloads the blocks' GitHub state.
    pub on_disconnected: Callback<()>,
}

/// The account's GitHub connection: its installations, "Connect GitHub" (GitHub's installation page,
/// which comes back to the board through the setup callback), and disconnect.
#[function_component]
pub fn GithubDialog(props: &GithubDialogProps) -> Html {
    let installations = use_state(|| None::<Vec<GithubInstallationView>>);
    let error = use_state(|| None::<String>);
    let reload = use_state(|| 0u32);
    {
        let (installations, error, account) = (
            installations.clone(),
            error.clone(),
            props.account_id.clone(),
        );
        use_effect_with(*reload, move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                match api::github_installations(&account).await {
                    Ok(list) => installations.set(Some(list)),
                    Err(failure) => error.set(Some(explain(&failure))),
                }
            });
        });
    }
    let connect = {
        let (error, account) = (error.clone(), props.account_id.clone());
        Callback::from(move |_: MouseEvent| {
            let (error, account) = (error.clone(), account.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::github_install_link(&account).await {
                    Ok(link) => {
                        if let Some(window) = web_sys::window() {
                            let _ = window.location().assign(&link.url);
                        }
                    }
                    Err(failure) => error.set(Some(explain(&failure))),
                }
            });
        })
    };
    let disconnect = |installation_id: u64| {
        let (error, reload, account, on_disconnected) = (
            error.clone(),
            reload.clone(),
            props.account_id.clone(),
            props.on_disconnected.clone(),
        );
        Callback::from(move |_: MouseEvent| {
            let (error, reload, account, on_disconnected) = (
                error.clone(),
                reload.clone(),
                account.clone(),
                on_disconnected.clone(),
            );
            wasm_bindgen_futures::spawn_local(async move {
                match api::disconnect_github_installation(&account, installation_id).await {
                    Ok(()) => {
                        reload.set(*reload + 1);
                        on_disconnected.emit(());
                    }
                    Err(failure) => error.set(Some(explain(&failure))),
                }
            });
        })
    };
    let close = {
        let on_close = props.on_close.clone();
        Callback::from(move |_: MouseEvent| on_close.emit(()))
    };
    html! {
        <div class="modal-backdrop">
            <div class="modal github-dialog" role="dialog" aria-modal="true" aria-label="GitHub" data-testid="github-dialog">
                <h2>{ "GitHub" }</h2>
                if let Some(list) = installations.as_ref() {
                    <p data-testid="github-summary">{ model::installations_summary(list) }</p>
                    <ul class="github-installations">
                        { for list.iter().map(|installation| html! {
                            <li key={installation.installation_id.to_string()} data-testid="github-installation">
                                <span>{ format!("{} · {} repositories{}", installation.account_login,
                                    installation.repository_count,
                                    if installation.suspended { " · suspended" } else { "" }) }</span>
                                <button class="ghost small danger" onclick={disconnect(installation.installation_id)}
                                    title="Disconnect from this account (its frames are unlinked, never deleted)">{ "Disconnect" }</button>
                            </li>
                        }) }
                    </ul>
                } else if error.is_none() {
                    <p class="muted">{ "Loading…" }</p>
                }
                if let Some(text) = error.as_ref() {
                    <p class="error" role="alert" data-testid="github-error">{ text.clone() }</p>
                }
                <p class="muted small">{ "Connecting installs the cat-factory GitHub App on the GitHub accounts and repositories you choose; link a frame to a repository from its side panel." }</p>
                <div class="modal-actions">
                    <button class="button" onclick={close} data-testid="github-close">{ "Close" }</button>
                    <button class="button primary" onclick={connect} data-testid="github-connect">{ "Connect GitHub" }</button>
                </div>
            </div>
        </div>
    }
}
