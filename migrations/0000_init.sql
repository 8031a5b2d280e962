CREATE TABLE `acl_rules` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`username` text,
	`client_id_pattern` text,
	`topic_filter` text NOT NULL,
	`action` text NOT NULL,
	`allow` integer NOT NULL,
	`priority` integer DEFAULT 0 NOT NULL,
	CONSTRAINT "acl_rules_action_check" CHECK("acl_rules"."action" in ('publish', 'subscribe', 'all'))
);
--> statement-breakpoint
CREATE INDEX `acl_rules_username_idx` ON `acl_rules` (`username`);--> statement-breakpoint
CREATE TABLE `api_keys` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`hash` text NOT NULL,
	`created_at` integer NOT NULL,
	`last_used_at` integer,
	`revoked_at` integer
);
--> statement-breakpoint
CREATE INDEX `api_keys_hash_idx` ON `api_keys` (`hash`);--> statement-breakpoint
CREATE TABLE `credentials` (
	`username` text PRIMARY KEY NOT NULL,
	`salt` text NOT NULL,
	`hash` text NOT NULL,
	`algorithm` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `devices` (
	`client_id` text PRIMARY KEY NOT NULL,
	`username` text,
	`protocol_version` integer NOT NULL,
	`online` integer DEFAULT false NOT NULL,
	`connected_at` integer,
	`disconnected_at` integer,
	`last_seen_at` integer,
	`disconnect_reason` text,
	`will_fired` integer DEFAULT false NOT NULL,
	`remote_address` text,
	`session_expires_at` integer
);
--> statement-breakpoint
CREATE INDEX `devices_online_idx` ON `devices` (`online`);--> statement-breakpoint
CREATE INDEX `devices_username_idx` ON `devices` (`username`);--> statement-breakpoint
CREATE INDEX `devices_last_seen_idx` ON `devices` (`last_seen_at`);