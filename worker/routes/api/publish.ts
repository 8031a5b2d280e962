import { apiRouter } from "./router";

/** /api/v1/publish (being built: issue 11). */
export const publish = apiRouter();
