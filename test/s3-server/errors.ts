/** S3 error responses as thrown inside handlers. */
import type { XmlNode } from './xml.js';

/** An error the server answers with an AWS-style XML `<Error>` document. */
export class S3Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra elements after Code/Message, e.g. StorageClass for InvalidObjectState. */
    readonly extra: XmlNode[] = [],
  ) {
    super(message);
    this.name = 'S3Error';
  }
}

export const noSuchBucket = (bucket: string): S3Error =>
  new S3Error(404, 'NoSuchBucket', 'The specified bucket does not exist', [['BucketName', bucket]]);
export const noSuchKey = (key: string): S3Error => new S3Error(404, 'NoSuchKey', 'The specified key does not exist.', [['Key', key]]);
export const noSuchUpload = (uploadId: string): S3Error =>
  new S3Error(
    404,
    'NoSuchUpload',
    'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
    [['UploadId', uploadId]],
  );
export const malformedXml = (): S3Error =>
  new S3Error(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema');
export const invalidArgument = (message: string, name?: string, value?: string): S3Error =>
  new S3Error(400, 'InvalidArgument', message, name === undefined ? [] : [['ArgumentName', name], ['ArgumentValue', value ?? '']]);
export const badDigest = (message: string): S3Error => new S3Error(400, 'BadDigest', message);
export const invalidObjectState = (storageClass: string): S3Error =>
  new S3Error(403, 'InvalidObjectState', "The operation is not valid for the object's storage class", [['StorageClass', storageClass]]);
export const accessDenied = (): S3Error => new S3Error(403, 'AccessDenied', 'Access Denied');
export const preconditionFailed = (condition: string): S3Error =>
  new S3Error(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', [['Condition', condition]]);
