/** A mail ready for the transport: what the domain renders and the SMTP transport sends. */
export type RenderedMail = {
  /** Exactly one bare address: the SMTP envelope and the To header both use it. */
  to: string;
  subject: string;
  text: string;
  html: string;
  /** The mail request it renders: the SMTP transport names the mail after it (Message-ID, see mime-ids.ts). */
  requestId?: string;
  /** The request's DLQ replay generation (0: its original delivery), part of the Message-ID when above 0. */
  generation?: number;
};
