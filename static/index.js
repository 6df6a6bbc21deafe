/** The home page: only the language switch. @module */
import { initI18n } from "./i18n.js";

initI18n();
