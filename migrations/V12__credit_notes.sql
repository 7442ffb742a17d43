-- Issued invoices are never edited: a correction is a credit note that refers to the
-- invoice. The credit notes of one invoice add up to at most its total (the service checks
-- that inside the write that adds one).
CREATE TABLE credit_notes (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    invoice_id       TEXT NOT NULL REFERENCES invoices(id) ON DELETE CASCADE,
    amount_micros    INTEGER NOT NULL CHECK (amount_micros > 0),
    reason           TEXT NOT NULL CHECK (length(trim(reason)) > 0),
    issued_by        TEXT REFERENCES users(id) ON DELETE SET NULL,
    issued_at        TEXT NOT NULL
);
CREATE INDEX credit_notes_by_invoice ON credit_notes (organization_id, invoice_id, issued_at);

-- Neither an invoice nor a credit note changes once written (deleting an organization
-- still takes its rows with it).
CREATE TRIGGER invoices_immutable
BEFORE UPDATE ON invoices
BEGIN
    SELECT RAISE(ABORT, 'issued invoices are immutable; issue a credit note');
END;

CREATE TRIGGER credit_notes_immutable
BEFORE UPDATE ON credit_notes
BEGIN
    SELECT RAISE(ABORT, 'credit notes are immutable');
END;
