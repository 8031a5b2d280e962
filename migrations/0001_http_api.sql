ALTER TABLE `api_keys` ADD `scopes` text DEFAULT '["#"]' NOT NULL;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `device_id` text;--> statement-breakpoint
ALTER TABLE `devices` ADD `transport` text DEFAULT 'mqtt' NOT NULL;--> statement-breakpoint
ALTER TABLE `devices` ADD `lease_expires_at` integer;--> statement-breakpoint
ALTER TABLE `devices` ADD `disconnect_code` integer;--> statement-breakpoint
ALTER TABLE `devices` ADD `connection_count` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `devices` ADD `decommissioned_at` integer;--> statement-breakpoint
CREATE INDEX `devices_lease_idx` ON `devices` (`online`,`lease_expires_at`);