-- When a contact's or a lead's personal data was erased; its name, email and phone then
-- read '[erased]'.
ALTER TABLE contacts ADD COLUMN IF NOT EXISTS erased_at TIMESTAMPTZ;
ALTER TABLE leads ADD COLUMN IF NOT EXISTS erased_at TIMESTAMPTZ;
