import { apiRouter } from "./router";

/** /api/v1/stats (being built: issue 11). */
export const stats = apiRouter();
