ALTER TABLE `acl_rules` RENAME COLUMN "client_id_pattern" TO "client_id";--> statement-breakpoint
ALTER TABLE `acl_rules` RENAME COLUMN "topic_filter" TO "topic";--> statement-breakpoint
ALTER TABLE `acl_rules` ADD `created_at` integer;--> statement-breakpoint
CREATE INDEX `acl_rules_client_id_idx` ON `acl_rules` (`client_id`);--> statement-breakpoint
ALTER TABLE `acl_rules` DROP COLUMN `priority`;--> statement-breakpoint
ALTER TABLE `credentials` ADD `admin` integer DEFAULT false NOT NULL;