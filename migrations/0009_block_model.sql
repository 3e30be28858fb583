-- A block's own model choice (issue 12): the model its runs use unless a run names one; NULL leaves it
-- to the workspace's default (`workspaces.default_model`, 0005), then the deployment's.
ALTER TABLE blocks ADD COLUMN model_id TEXT;
