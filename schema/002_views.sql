-- pofr schema, migration 002: views for analysts.

-- It created the views processes, process_tree, timeline and connections.
-- Views hold no rows: their current definitions are in views.sql, which
-- Apply runs after the migrations every time, so this migration now only
-- records the version.
