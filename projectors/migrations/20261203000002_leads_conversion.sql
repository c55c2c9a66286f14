-- The leads projection stops storing the domain's Lead as JSON (its serde was the storage
-- format): the columns hold the lead, and `conversion` what a conversion was made with, in
-- the projection's own format (projectors::leads::ConversionView).
ALTER TABLE leads ADD COLUMN IF NOT EXISTS conversion JSONB;
UPDATE leads SET conversion = jsonb_build_object(
        'account_id', document->'conversion'->'account_id',
        'new_account', document->'conversion'->'new_account',
        'contact_id', document->'conversion'->'contact_id',
        'opportunity_id', document->'conversion'->'opportunity_id',
        'opportunity_name', document->'conversion'->'opportunity_name',
        'amount', document->'conversion'->'amount'->'value',
        'currency', document->'conversion'->'amount'->'currency',
        'close_date', document->'conversion'->'close_date',
        'converted_by', document->'conversion'->'converted_by',
        'correlation_id', document->'conversion'->'correlation_id')
    WHERE conversion IS NULL AND jsonb_typeof(document->'conversion') = 'object';
ALTER TABLE leads DROP COLUMN IF EXISTS document;
