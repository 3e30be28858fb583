//! The authorization matrix: every non-public route × anonymous, non-member, viewer, member, admin.
//!
//! The expectations are written out here, independently of the route table, so a route whose access
//! rule drifts fails this test.

use cat_tests::api::{Answer, Client, RawBody, unique_login};
use cat_tests::worker::WorkerServer;
use domain::api::Operation;
use domain::api::routes::{ROUTES, RouteAccess, RouteSpec};
use reqwest::Method;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Persona {
    Anonymous,
    NonMember,
    Viewer,
    Member,
    Admin,
}

const PERSONAS: [Persona; 5] = [
    Persona::Anonymous,
    Persona::NonMember,
    Persona::Viewer,
    Persona::Member,
    Persona::Admin,
];

/// The least workspace role each workspace route needs (the specification this test checks).
fn minimum_role(operation: Operation) -> Option<Persona> {
    use Operation::*;
    Some(match operation {
        GetWorkspace
        | ListWorkspaceMembers
        | GetBoard
        | GetBlock
        | CreateEventTicket
        | GetWorkspaceSpend
        | GetBlockForecast
        | ListPipelines
        | ListRuns
        | GetRun
        | ListGithubRepositories
        | ListBlockGithub => Persona::Viewer,
        CreateBlock | UpdateBlock | ReparentBlock | DeleteBlock | CreateEdge | DeleteEdge
        | CreateGatewayToken | CreatePipeline | UpdatePipeline | DeletePipeline | CreateRun
        | CancelRun | RetryRun | AnswerDecision | GiveApproval | MergeBlock
        | LinkBlockRepository | ImportIssues => Persona::Member,
        UpdateWorkspace | DeleteWorkspace | AddWorkspaceMember | RemoveWorkspaceMember => {
            Persona::Admin
        }
        _ => return None,
    })
}

/// Routes whose fixture request is refused for the state the run is in (409) once authorization
/// has let it through: what the matrix checks is that members reach the run and others do not.
fn refused_by_state(operation: Operation) -> bool {
    use Operation::*;
    matches!(
        operation,
        RetryRun | AnswerDecision | GiveApproval | MergeBlock
    )
}

/// A restricted workspace with one user per persona, a frame (linking a local repository) ⊃ module
/// ⊃ task with an edge, a custom pipeline, and a run queued on the task (it waits for the module).
struct Fixture {
    anonymous: Client,
    stranger: Client,
    viewer: Client,
    member: Client,
    admin: Client,
    workspace: String,
    org_account: String,
    frame: String,
    module: String,
    task: String,
    edge: String,
    pipeline: String,
    run: String,
}

impl Fixture {
    async fn new(server: &WorkerServer) -> Fixture {
        let admin = Client::sign_in(server, &unique_login("admin")).await;
        let member = Client::sign_in(server, &unique_login("member")).await;
        let viewer = Client::sign_in(server, &unique_login("viewer")).await;
        let stranger = Client::sign_in(server, &unique_login("stranger")).await;
        let workspace = admin
            .post(
                "/workspaces",
                json!({ "name": "matrix", "accessMode": "restricted" }),
            )
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for (who, role) in [(&member, "member"), (&viewer, "viewer")] {
            admin
                .post(
                    &format!("/workspaces/{workspace}/members"),
                    json!({ "login": who.login, "role": role }),
                )
                .await
                .expect(200);
        }
        let org_account = admin
            .post("/accounts", json!({ "name": "Org" }))
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let frame = admin
            .post(
                &format!("/workspaces/{workspace}/blocks"),
                json!({ "level": "frame", "title": "Frame", "repoUrl": "local:matrix" }),
            )
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let module = admin
            .create_block(&workspace, "module", Some(&frame), "Module")
            .await;
        let task = admin
            .create_block(&workspace, "task", Some(&module), "Task")
            .await;
        let edge = admin
            .post(
                &format!("/workspaces/{workspace}/edges"),
                json!({ "from": task, "to": module }),
            )
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let pipeline = admin
            .post(
                &format!("/workspaces/{workspace}/pipelines"),
                json!({ "name": "Just code", "steps": [{ "kind": "coder" }] }),
            )
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let run = admin
            .post(
                &format!("/workspaces/{workspace}/blocks/{task}/runs"),
                json!({ "pipelineId": "quick", "queue": true }),
            )
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        Fixture {
            anonymous: Client::anonymous(server),
            stranger,
            viewer,
            member,
            admin,
            workspace,
            org_account,
            frame,
            module,
            task,
            edge,
            pipeline,
            run,
        }
    }

    fn client(&self, persona: Persona) -> &Client {
        match persona {
            Persona::Anonymous => &self.anonymous,
            Persona::NonMember => &self.stranger,
            Persona::Viewer => &self.viewer,
            Persona::Member => &self.member,
            Persona::Admin => &self.admin,
        }
    }

    /// A concrete, valid request for `route` made by `persona`.
    async fn call(&self, route: &RouteSpec, persona: Persona) -> Answer {
        use Operation::*;
        let client = self.client(persona);
        let ws = format!("/workspaces/{}", self.workspace);
        let (path, body): (String, Option<Value>) = match route.operation {
            GetMe | ListApiTokens | ListAccounts | ListWorkspaces => (route.path.to_owned(), None),
            Logout | RevokeAllSessions => (route.path.to_owned(), Some(json!(null))),
            CreateApiToken => ("/auth/tokens".into(), Some(json!({ "name": "matrix" }))),
            DeleteApiToken => {
                let id = if persona == Persona::Anonymous {
                    "tok_0000000000000001".to_owned()
                } else {
                    client
                        .post("/auth/tokens", json!({ "name": "doomed" }))
                        .await
                        .id()
                };
                (format!("/auth/tokens/{id}"), None)
            }
            CreateAccount => ("/accounts".into(), Some(json!({ "name": "Another org" }))),
            AddAccountMember => (
                format!("/accounts/{}/members", self.org_account),
                Some(json!({ "login": self.stranger.login, "role": "member" })),
            ),
            ListAccountMembers => (format!("/accounts/{}/members", self.org_account), None),
            CreateWorkspace => ("/workspaces".into(), Some(json!({ "name": "new" }))),
            GetWorkspace | DeleteWorkspace => (ws, None),
            UpdateWorkspace => (ws, Some(json!({ "name": "renamed" }))),
            ListWorkspaceMembers => (format!("{ws}/members"), None),
            AddWorkspaceMember => (
                format!("{ws}/members"),
                Some(json!({ "login": self.stranger.login, "role": "viewer" })),
            ),
            RemoveWorkspaceMember => (format!("{ws}/members/{}", self.viewer.user_id), None),
            GetBoard => (format!("{ws}/board"), None),
            CreateBlock => (
                format!("{ws}/blocks"),
                Some(json!({ "level": "frame", "title": "New" })),
            ),
            GetBlock | DeleteBlock => (format!("{ws}/blocks/{}", self.task), None),
            UpdateBlock => (
                format!("{ws}/blocks/{}", self.task),
                Some(json!({ "rev": 1, "title": "Renamed" })),
            ),
            ReparentBlock => (
                format!("{ws}/blocks/{}/reparent", self.task),
                Some(json!({ "rev": 1, "parentId": self.frame })),
            ),
            CreateEdge => (
                format!("{ws}/edges"),
                Some(json!({ "from": self.frame, "to": self.module })),
            ),
            DeleteEdge => (format!("{ws}/edges/{}", self.edge), None),
            CreateEventTicket => (format!("{ws}/events/ticket"), Some(json!(null))),
            ListPipelines => (format!("{ws}/pipelines"), None),
            CreatePipeline => (
                format!("{ws}/pipelines"),
                Some(json!({ "name": "Review only", "steps": [{ "kind": "architect" }] })),
            ),
            UpdatePipeline => (
                format!("{ws}/pipelines/{}", self.pipeline),
                Some(json!({ "name": "Renamed", "steps": [{ "kind": "coder" }] })),
            ),
            DeletePipeline => (format!("{ws}/pipelines/{}", self.pipeline), None),
            // The fixture's own task has a live run; a module's sibling task is free.
            CreateRun => {
                let free = self
                    .admin
                    .create_block(&self.workspace, "task", Some(&self.module), "Free")
                    .await;
                (
                    format!("{ws}/blocks/{free}/runs"),
                    Some(json!({ "pipelineId": "quick" })),
                )
            }
            ListRuns => (format!("{ws}/runs?block={}", self.task), None),
            GetRun => (format!("{ws}/runs/{}", self.run), None),
            CancelRun => (format!("{ws}/runs/{}/cancel", self.run), Some(json!(null))),
            RetryRun => (format!("{ws}/runs/{}/retry", self.run), Some(json!(null))),
            AnswerDecision => (
                format!("{ws}/runs/{}/decisions/dec-0-1", self.run),
                Some(json!({ "choice": "yes" })),
            ),
            GiveApproval => (
                format!("{ws}/runs/{}/approvals/apr-0-1", self.run),
                Some(json!({ "verdict": "approve" })),
            ),
            MergeBlock => (
                format!("{ws}/blocks/{}/merge", self.task),
                Some(json!(null)),
            ),
            ListModels => ("/models".into(), None),
            SetSpendLimit => (
                format!("/accounts/{}/spend/limit", self.org_account),
                Some(json!({ "limitUsd": "10" })),
            ),
            GetAccountSpend => (format!("/accounts/{}/spend", self.org_account), None),
            GrantSpendOverride => (
                format!("/accounts/{}/spend/override", self.org_account),
                None,
            ),
            GetWorkspaceSpend => (format!("{ws}/spend?by=model"), None),
            CreateGatewayToken => (
                format!("{ws}/gateway-tokens"),
                Some(json!({ "model": "gpt-4o-mini", "blockId": self.task })),
            ),
            PriceModel => (
                format!("/accounts/{}/models/local-llama", self.org_account),
                Some(
                    json!({ "provider": "openai_compatible", "inputUsdPerMillion": "0",
                             "outputUsdPerMillion": "0" }),
                ),
            ),
            GetBlockForecast => (
                format!(
                    "{ws}/blocks/{}/forecast?pipeline=build&model=gpt-4o-mini",
                    self.task
                ),
                None,
            ),
            SetProvider => (
                format!("/accounts/{}/providers/anthropic", self.org_account),
                Some(json!({ "apiKey": "sk-ant-matrix-0123456789" })),
            ),
            ListProviders => (format!("/accounts/{}/providers", self.org_account), None),
            GithubInstall => (
                format!("/accounts/{}/github/install", self.org_account),
                None,
            ),
            ListGithubInstallations => (
                format!("/accounts/{}/github/installations", self.org_account),
                None,
            ),
            DeleteGithubInstallation => (
                format!("/accounts/{}/github/installations/4242", self.org_account),
                None,
            ),
            ListGithubRepositories => (format!("{ws}/github/repos"), None),
            LinkBlockRepository => (
                format!("{ws}/blocks/{}/repo", self.frame),
                Some(json!({ "repository": "acme/billing" })),
            ),
            ImportIssues => (
                format!("{ws}/blocks/{}/import-issues", self.frame),
                Some(json!({})),
            ),
            ListBlockGithub => (format!("{ws}/github/blocks"), None),
            RemoveAccountMember => {
                // Someone to remove: a fresh user the org's admin adds (not a persona, so every
                // persona but the admin is still outside the account).
                let leaving =
                    Client::sign_in(WorkerServer::shared(), &unique_login("leaving")).await;
                self.admin
                    .post(
                        &format!("/accounts/{}/members", self.org_account),
                        json!({ "login": leaving.login, "role": "member" }),
                    )
                    .await
                    .expect(200);
                (
                    format!("/accounts/{}/members/{}", self.org_account, leaving.user_id),
                    None,
                )
            }
            Health
            | OpenApi
            | GithubLogin
            | GithubCallback
            | DevLogin
            | OpenEventStream
            | GatewayChatCompletions
            | GatewayMessages
            | GithubSetup
            | GithubWebhook => {
                unreachable!("public routes are not in the matrix")
            }
        };
        let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        client.send(method, &path, body.map(RawBody::Json)).await
    }
}

/// The GitHub routes that need the App's settings: the shared server has none, so once
/// authorization lets a caller through they answer 503 `github_not_configured` (tests/tests/github.rs
/// covers them configured).
fn needs_the_github_app(operation: Operation) -> bool {
    use Operation::*;
    matches!(
        operation,
        GithubInstall
            | ListGithubInstallations
            | DeleteGithubInstallation
            | ListGithubRepositories
            | LinkBlockRepository
            | ImportIssues
    )
}

fn expected_status(route: &RouteSpec, persona: Persona) -> u16 {
    let success = if refused_by_state(route.operation) {
        409
    } else if needs_the_github_app(route.operation) {
        503
    } else {
        route.success.0
    };
    if persona == Persona::Anonymous {
        return 401;
    }
    if matches!(
        route.operation,
        Operation::AddAccountMember
            | Operation::SetSpendLimit
            | Operation::GetAccountSpend
            | Operation::GrantSpendOverride
            | Operation::PriceModel
            | Operation::SetProvider
            | Operation::ListProviders
            | Operation::GithubInstall
            | Operation::ListGithubInstallations
            | Operation::DeleteGithubInstallation
            | Operation::RemoveAccountMember
            | Operation::ListAccountMembers
    ) {
        // Only the organisation's admin is in it; everyone else must not learn it exists.
        return if persona == Persona::Admin {
            success
        } else {
            404
        };
    }
    match minimum_role(route.operation) {
        None => success,
        Some(_) if persona == Persona::NonMember => 404,
        Some(minimum) if persona >= minimum => success,
        Some(_) => 403,
    }
}

#[tokio::test]
async fn every_route_answers_every_persona_as_specified() {
    let server = WorkerServer::shared();
    let shared = Fixture::new(server).await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for route in ROUTES
        .iter()
        .filter(|route| route.access != RouteAccess::Public)
    {
        assert_eq!(
            minimum_role(route.operation).is_some(),
            matches!(route.access, RouteAccess::Workspace(_)),
            "{:?}: the matrix and the route table disagree on whether this is a workspace route",
            route.operation
        );
        for persona in PERSONAS {
            // Reads share one fixture; anything that may change state gets a fresh one.
            let fresh;
            let fixture = if route.method == domain::api::Method::Get {
                &shared
            } else {
                fresh = Fixture::new(server).await;
                &fresh
            };
            let answer = fixture.call(route, persona).await;
            let expected = expected_status(route, persona);
            checked += 1;
            if answer.status != expected {
                failures.push(format!(
                    "{} {} as {persona:?}: expected {expected}, got {} {}",
                    route.method.as_str(),
                    route.path,
                    answer.status,
                    answer.body
                ));
            }
            if answer.status >= 400 {
                assert!(
                    answer.code().is_some(),
                    "{} as {persona:?}: error without envelope",
                    route.path
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn account_mode_workspaces_are_visible_to_account_members_and_listed() {
    let server = WorkerServer::shared();
    let admin = Client::sign_in(server, &unique_login("orgadmin")).await;
    let colleague = Client::sign_in(server, &unique_login("colleague")).await;
    let outsider = Client::sign_in(server, &unique_login("outsider")).await;
    let org = admin
        .post("/accounts", json!({ "name": "Team" }))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .post(
            &format!("/accounts/{org}/members"),
            json!({ "login": colleague.login, "role": "member" }),
        )
        .await
        .expect(200);
    // Everyone in the account sees who else is in it (the board's sharing dialog lists them for
    // admins); nobody else learns the account exists.
    let listed = colleague
        .get(&format!("/accounts/{org}/members"))
        .await
        .expect(200);
    let roles: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|member| {
            (
                member["user"]["login"].as_str().unwrap().to_owned(),
                member["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut expected = vec![
        (admin.login.clone(), "admin".to_owned()),
        (colleague.login.clone(), "member".to_owned()),
    ];
    expected.sort_by_key(|(login, _)| login.to_lowercase());
    assert_eq!(roles, expected, "the account's members, by login");
    assert_eq!(
        outsider
            .get(&format!("/accounts/{org}/members"))
            .await
            .expect(404)
            .get("error")
            .and_then(|error| error.get("code"))
            .and_then(Value::as_str),
        Some("not_found")
    );
    let open = admin
        .post("/workspaces", json!({ "name": "open", "accountId": org }))
        .await
        .expect(201);
    let open_id = open["id"].as_str().unwrap();
    let closed = admin
        .post(
            "/workspaces",
            json!({ "name": "closed", "accountId": org, "accessMode": "restricted" }),
        )
        .await
        .expect(201);
    let closed_id = closed["id"].as_str().unwrap();

    assert_eq!(
        colleague
            .get(&format!("/workspaces/{open_id}"))
            .await
            .expect(200)["role"],
        "member"
    );
    assert_eq!(
        colleague
            .get(&format!("/workspaces/{closed_id}"))
            .await
            .status,
        404
    );
    assert_eq!(
        outsider.get(&format!("/workspaces/{open_id}")).await.status,
        404
    );
    let listed: Vec<String> = colleague
        .get("/workspaces")
        .await
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|workspace| workspace["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        listed.contains(&open_id.to_owned()) && !listed.contains(&closed_id.to_owned()),
        "{listed:?}"
    );
    // Account admins administer every workspace of the account, restricted or not.
    assert_eq!(
        admin
            .get(&format!("/workspaces/{closed_id}"))
            .await
            .expect(200)["role"],
        "admin"
    );
    // A workspace in someone else's account cannot be created.
    let refused = outsider
        .post("/workspaces", json!({ "name": "sneaky", "accountId": org }))
        .await;
    assert_eq!(refused.status, 404);
    // The last admin of an account cannot be demoted.
    let demote = admin
        .post(
            &format!("/accounts/{org}/members"),
            json!({ "login": admin.login, "role": "member" }),
        )
        .await;
    assert_eq!(demote.code(), Some("rule_violated"));
}
