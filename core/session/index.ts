export * from "./types";
export * from "./store";
export { MemorySessionStore } from "./memory-store";
export { Session } from "./session";
export { admitConnect, refuseMalformedConnect, to311ReturnCode, type Admission } from "./admit";
