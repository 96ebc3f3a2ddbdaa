CREATE INDEX "feedback_model_updated_at_idx" ON "feedback" USING btree ("model","updated_at");--> statement-breakpoint
CREATE INDEX "feedback_events_model_received_at_idx" ON "feedback_events" USING btree ("model","received_at");--> statement-breakpoint
CREATE INDEX "outcomes_model_received_at_idx" ON "outcomes" USING btree ("model","received_at");