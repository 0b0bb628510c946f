-- Per-session grants (sqlite): a user's optional e-mail, which an approver or incident responder named in a
-- session's metadata is matched against (ignoring case), beside the user name.
ALTER TABLE users ADD COLUMN email TEXT;
