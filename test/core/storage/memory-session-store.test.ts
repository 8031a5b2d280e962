import { MemorySessionStore } from "../../../core/session/memory-store.js";
import { sessionStoreContract } from "../../contracts/session-store.js";

sessionStoreContract("MemorySessionStore", () => new MemorySessionStore());
