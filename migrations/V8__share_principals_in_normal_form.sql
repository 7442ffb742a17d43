-- Shares once stored a user or team id as the client typed it (upper case, or without
-- hyphens). Such a share granted nothing, since reads compare the normal form (lower
-- case, hyphenated), and it outlived the team it named. Rewrite them in the normal form;
-- where both spellings exist, the normal one stays and the other goes.
UPDATE OR IGNORE resource_shares
   SET principal_id = lower(principal_id)
 WHERE length(principal_id) = 36 AND principal_id <> lower(principal_id);

UPDATE OR IGNORE resource_shares
   SET principal_id = lower(substr(principal_id, 1, 8) || '-' || substr(principal_id, 9, 4) || '-'
                         || substr(principal_id, 13, 4) || '-' || substr(principal_id, 17, 4) || '-'
                         || substr(principal_id, 21, 12))
 WHERE length(principal_id) = 32 AND principal_id NOT LIKE '%-%';

DELETE FROM resource_shares
 WHERE (length(principal_id) = 36 AND principal_id <> lower(principal_id))
    OR (length(principal_id) = 32 AND principal_id NOT LIKE '%-%');
