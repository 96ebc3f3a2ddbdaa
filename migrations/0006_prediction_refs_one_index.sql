-- The primary key (prediction_id, role, version, created_at) already serves
-- lookups by prediction id: one index fewer to maintain per stored result.
DROP INDEX "prediction_refs_prediction_id_idx";