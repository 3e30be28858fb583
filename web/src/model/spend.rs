//! What has been spent, as the board shows it: per block (the run panel) and for the whole workspace
//! this month (the toolbar), loaded from the spend routes and kept live by `spend.changed` events.

use crate::model::fast_hash::FastMap;

use domain::ids::BlockId;
use domain::spend::{AccountSpend, MicroDollars, SettledCall, SpendLine};

/// The workspace's spend this month and the account's budget, when the person may see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpendTally {
    pub by_block: FastMap<BlockId, BlockSpend>,
    /// Everything the workspace spent this month (calls tied to no block included).
    pub workspace: MicroDollars,
    /// The account's budget (`None`: not loaded, or the person is not a member of the account).
    pub account: Option<AccountSpend>,
}

/// One block's spend this month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockSpend {
    pub cost: MicroDollars,
    pub calls: u64,
    pub tokens: u64,
}

impl SpendTally {
    /// From `GET /workspaces/:id/spend?by=block`.
    pub fn from_lines(lines: &[SpendLine]) -> SpendTally {
        let mut tally = SpendTally::default();
        for line in lines {
            tally.workspace = tally.workspace.saturating_add(line.cost);
            let Some(block) = line.key.as_deref().and_then(|key| BlockId::parse(key).ok()) else {
                continue;
            };
            let entry = tally.by_block.entry(block).or_default();
            entry.cost = entry.cost.saturating_add(line.cost);
            entry.calls += line.calls;
            entry.tokens += line.input_tokens + line.output_tokens;
        }
        tally
    }

    /// A settled call (`spend.changed`): its cost goes to its block, the workspace and the account.
    pub fn apply(&mut self, call: &SettledCall) {
        self.workspace = self.workspace.saturating_add(call.cost);
        if let Some(block) = &call.block_id {
            let entry = self.by_block.entry(block.clone()).or_default();
            entry.cost = entry.cost.saturating_add(call.cost);
            entry.calls += 1;
            entry.tokens += call.usage.input_tokens + call.usage.output_tokens;
        }
        if let Some(account) = &mut self.account {
            account.budget.spent = account.budget.spent.saturating_add(call.cost);
            account.headroom = account.budget.headroom();
        }
    }

    pub fn block(&self, id: &BlockId) -> BlockSpend {
        self.by_block.get(id).copied().unwrap_or_default()
    }

    /// What is left of the account's monthly limit (`None`: no limit, overridden, or not visible).
    pub fn headroom(&self) -> Option<MicroDollars> {
        self.account.as_ref().and_then(|account| account.headroom)
    }

    /// The toolbar's figure: `$1.20 spent this month`, and with a limit what is left of it
    /// (`$1.20 spent · $23.80 left`).
    pub fn toolbar_text(&self) -> String {
        match self.headroom() {
            Some(left) => format!("{} spent · {left} left", self.workspace),
            None => format!("{} spent this month", self.workspace),
        }
    }

    /// The toolbar's hover text: the account's figures, which the workspace's share is part of.
    pub fn toolbar_title(&self) -> String {
        match &self.account {
            Some(account) => {
                let limit = match (account.budget.limit, account.budget.overridden) {
                    (_, true) => "the limit is lifted for this month".to_owned(),
                    (Some(limit), false) => format!("its monthly limit is {limit}"),
                    (None, false) => "it has no monthly limit".to_owned(),
                };
                format!(
                    "This workspace spent {} on model calls this month. The account spent {} in all; {limit}.",
                    self.workspace, account.budget.spent
                )
            }
            None => format!(
                "This workspace spent {} on model calls this month.",
                self.workspace
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::spend::{Budget, CallStatus, TokenUsage};

    fn line(key: Option<&BlockId>, cost: u64) -> SpendLine {
        SpendLine {
            key: key.map(|id| id.to_string()),
            calls: 2,
            input_tokens: 10,
            output_tokens: 5,
            cost: MicroDollars(cost),
        }
    }

    fn call(block: Option<&BlockId>, cost: u64) -> SettledCall {
        SettledCall {
            block_id: block.cloned(),
            run_id: None,
            step: None,
            model: "scripted".to_owned(),
            provider: "openai_compatible".to_owned(),
            usage: TokenUsage {
                input_tokens: 100,
                output_tokens: 20,
            },
            cost: MicroDollars(cost),
            status: CallStatus::Completed,
        }
    }

    #[test]
    fn spend_is_tallied_per_block_and_a_settled_call_adds_to_its_block_and_the_budget() {
        let (first, second) = (BlockId::from_random([1; 8]), BlockId::from_random([2; 8]));
        let mut tally = SpendTally::from_lines(&[line(Some(&first), 300), line(None, 50)]);
        assert_eq!(tally.workspace, MicroDollars(350));
        assert_eq!(tally.block(&first).cost, MicroDollars(300));
        assert_eq!(tally.block(&first).tokens, 15);
        assert_eq!(tally.block(&second), BlockSpend::default());
        assert_eq!(tally.toolbar_text(), "$0.00035 spent this month");

        tally.account = Some(AccountSpend {
            period: "2026-11".to_owned(),
            budget: Budget {
                limit: Some(MicroDollars(1_000_000)),
                spent: MicroDollars(400),
                reserved: MicroDollars(0),
                overridden: false,
            },
            headroom: Some(MicroDollars(999_600)),
            by_workspace: Vec::new(),
            by_model: Vec::new(),
            by_day: Vec::new(),
        });
        tally.apply(&call(Some(&second), 1_000));
        tally.apply(&call(None, 10));
        assert_eq!(tally.block(&second).cost, MicroDollars(1_000));
        assert_eq!(tally.block(&second).calls, 1);
        assert_eq!(tally.workspace, MicroDollars(1_360));
        assert_eq!(tally.headroom(), Some(MicroDollars(998_590)));
        assert_eq!(tally.toolbar_text(), "$0.00136 spent · $0.99859 left");
        assert!(tally.toolbar_title().contains("monthly limit is $1.00"));
    }
}
