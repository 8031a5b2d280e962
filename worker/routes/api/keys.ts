import { apiRouter } from "./router";

/** /api/v1/keys (being built: issue 11). */
export const keys = apiRouter();
