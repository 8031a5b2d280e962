export * from "./reasons";
export * from "./lease";
export * from "./patch";
export * from "./state";
export * from "./sys";
export * from "./shard";
